"""xenscripts-hotplugd: the warm server that runs commands for thin clients, and its peer check.

May import: every layer below; a command only through the registry (setup.cfg ``[importlinter]``).
"""
