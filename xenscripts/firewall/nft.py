"""Our nftables tables, whole: the constant rules antispoof and NAT run through (vifs only add set elements).

Antispoof is a constant set of rules per family (``table bridge xenscripts``
for bridge ports, ``table inet xenscripts`` for routed vifs) whose sets are
keyed by interface name: a vif only adds and removes set elements. compat
rules live in the host's ``ip filter FORWARD`` (iptables-nft). What sends
them is ``libnft`` (the executor); what decides is ``backend_nft``.
"""

from __future__ import annotations

_FROM_GUEST_IP = """\
	chain ip_from_guest {
		udp sport 67 udp dport 68 drop
		ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
		iifname . ip saddr != @ipv4 drop
		accept
	}
	chain ip6_from_guest {
		icmpv6 type { nd-router-advert, nd-redirect } drop
		udp sport 547 drop
		ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept
		iifname . ip6 saddr != @ipv6 drop
		accept
	}
"""
_SETS = """\
	set vifs { type ifname; }
	set macs { type ifname . ether_addr; }
	set ipv4 { type ifname . ipv4_addr; flags interval; }
	set ipv6 { type ifname . ipv6_addr; flags interval; }
"""
# Before conntrack (-200): a dropped frame never creates a connection.
_FROM_GUEST = """\
	chain from_guest {
		type filter hook prerouting priority -300; policy accept;
		iifname != @vifs accept
		iifname . ether saddr != @macs drop
"""
# Every table is created whole with ``create table`` first: a second creator fails atomically.
SCAFFOLDS = {
    "bridge": "create table bridge xenscripts\ntable bridge xenscripts {\n" + _SETS + _FROM_GUEST + """\
		ether type arp jump arp_from_guest
		ether type ip jump ip_from_guest
		ether type ip6 jump ip6_from_guest
		drop
	}
	chain arp_from_guest {
		iifname . arp saddr ether != @macs drop
		arp saddr ip 0.0.0.0 accept
		iifname . arp saddr ip != @ipv4 drop
		accept
	}
""" + _FROM_GUEST_IP + "}\n",
    "inet": "create table inet xenscripts\ntable inet xenscripts {\n" + _SETS + _FROM_GUEST + """\
		meta nfproto ipv4 jump ip_from_guest
		meta nfproto ipv6 jump ip6_from_guest
	}
""" + _FROM_GUEST_IP + "}\n",
    # routed vifs: the inet family does not see ARP, so ARP into dom0 gets its own table
    "arp": """create table arp xenscripts
table arp xenscripts {
	set vifs { type ifname; }
	set macs { type ifname . ether_addr; }
	set ipv4 { type ifname . ipv4_addr; flags interval; }
	chain from_guest {
		type filter hook input priority 0; policy accept;
		iifname != @vifs accept
		iifname . arp saddr ether != @macs drop
		arp saddr ip 0.0.0.0 accept
		iifname . arp saddr ip != @ipv4 drop
	}
}
""",
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
