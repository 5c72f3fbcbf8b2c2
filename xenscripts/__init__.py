"""xenscripts: the Xen network hotplug scripts, in Python."""

__version__ = "0.2.0"
