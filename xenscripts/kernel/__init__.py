"""Netlink appliers and their pure planners: observe a netdev, plan a change, apply it with undo."""
