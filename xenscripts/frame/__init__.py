"""The frames script bodies run in: the vif frame (one transaction) and the network frame.

May import: netbridge, firewall, dhcp, netlink, xen, entry, core.
"""
