"""network-bridge's observe -> plan -> apply: a netdev as data, a pure plan of steps, an applier with undo.

May import: netlink, xen, entry, core.
"""
