"""Netlink verbs (pyroute2): link, port, address, route, neighbour, sysctl, ethtool, vlan.

May import: entry, core (and pyroute2).
"""
