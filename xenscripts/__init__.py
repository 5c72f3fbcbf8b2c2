"""xenscripts: drop-in Python replacement for the Xen network hotplug scripts."""

__version__ = "0.1.0"
