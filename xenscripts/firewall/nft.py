"""Our nftables tables, whole: the constant rules antispoof and NAT run through (vifs only add set elements).

Antispoof is a constant set of rules per family (``table bridge xenscripts``
for bridge ports, ``table inet xenscripts`` for routed vifs) whose sets are
keyed by interface name: a vif only adds and removes set elements. compat
rules live in the host's ``ip filter FORWARD`` (iptables-nft). What sends
them is ``libnft`` (the executor); what decides is ``backend_nft``.
"""

from __future__ import annotations

from .tables import TABLES

# Our antispoof tables are written with ``add`` and their chains refilled (tables.py); the NAT
# table is created whole with ``create table`` first (a second creator fails atomically).
SCAFFOLDS = {
    **TABLES,
    "ip": """create table ip xenscripts
table ip xenscripts {
	set masquerade_out { type ifname; }
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @masquerade_out masquerade
	}
}
""",
}
