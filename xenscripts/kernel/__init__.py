"""Kernel appliers (netlink and /proc/sys/net), one job per module."""
