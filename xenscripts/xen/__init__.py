"""Xen's side of a run: xenstore, the vif's inputs, hooks, and the Open vSwitch database beside them.

May import: entry, core (and ovs, for the database).
"""
