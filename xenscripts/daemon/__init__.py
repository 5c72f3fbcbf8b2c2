"""xenscripts-hotplugd: the warm server that runs commands for thin clients, and its peer check."""
