"""xenscripts-hotplugd: the warm server that runs commands for thin clients, and its peer check.

May import: commands and every layer below (layers: setup.cfg ``[importlinter]``).
"""
