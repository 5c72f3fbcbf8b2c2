"""The ``xenscripts`` admin command's library: install, status, check, show.

May import: commands and every layer below it.

Nothing here runs on the hotplug path. Install and uninstall use the standard
library only, so they run before the venv exists and after a Python upgrade
broke it; status and check import pyroute2 inside the functions that read
the kernel.
"""
