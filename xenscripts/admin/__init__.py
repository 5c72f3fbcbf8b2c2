"""The ``xenscripts`` admin command's library: install, status, check, show.

May import: every layer below it; a command only through the registry (``commands.COMMANDS``, ``run_command``).

Nothing here runs on the hotplug path. Install and uninstall use the standard
library only, so they run before the venv exists and after a Python upgrade
broke it; status and check import pyroute2 inside the functions that read
the kernel.
"""
