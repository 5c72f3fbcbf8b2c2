"""The antispoof rules: our nft tables, as text. Pure data; a vif only adds elements to their sets.

``table bridge xenscripts`` checks every frame a bridge port receives, at
the bridge's prerouting hook: before the bridge learns its source MAC,
before br_netfilter hands it to iptables, before any other vif's accept.
``table inet xenscripts`` and ``table arp xenscripts`` do the same for
routed and NAT vifs. Both backends use them (a legacy host keeps upstream's
compat rules in iptables-legacy): nothing else on Linux sees a bridged
frame before the bridge learns from it.

Each table is written with ``add`` (sets and chains kept, their elements
too) and its chains flushed and refilled, in one transaction: the first
vif creates it, a concurrent creator writes the same, and an older layout
is upgraded in place without a moment unprotected.
"""

from __future__ import annotations

# the sets every vif under antispoof adds its elements to (keyed by the vif's name first)
VIF_SETS = ("vifs", "macs", "ipv4_hosts", "ipv4", "ipv6_hosts", "ipv6", "nd_macs", "nd_target_hosts", "nd_targets",
            "dhcp_servers")

# Each set's key, as the table declares it and as the kernel holds an element of it (firewall/nftnl.py
# encodes elements from the same fields): (declaration, fields, holds ranges). A guest's own addresses
# are in hash sets (*_hosts); only its prefixes (ip=10.1.5.0/24) in interval sets, which the kernel
# keeps as concatenated ranges (pipapo) where deleting one element costs 20-30 ms with 1000 vifs.
SETS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "vifs": ("type ifname", ("ifname",), False),
    "macs": ("type ifname . ether_addr", ("ifname", "ether"), False),
    "ipv4_hosts": ("type ifname . ipv4_addr", ("ifname", "ipv4"), False),
    "ipv4": ("type ifname . ipv4_addr", ("ifname", "ipv4"), True),
    "ipv6_hosts": ("type ifname . ipv6_addr", ("ifname", "ipv6"), False),
    "ipv6": ("type ifname . ipv6_addr", ("ifname", "ipv6"), True),
    "nd_macs": ("typeof iifname . @th,208,48", ("ifname", "int48"), False),
    "nd_target_hosts": ("typeof iifname . @th,64,128", ("ifname", "int128"), False),
    "nd_targets": ("typeof iifname . @th,64,128", ("ifname", "int128"), True),
    "dhcp_servers": ("type ifname", ("ifname",), False),
    "masquerade_out": ("type ifname", ("ifname",), False),  # network-nat's, in table ip xenscripts
}

# A host address's hash set, beside each interval set that holds the prefixes of the same key.
HOST_SETS = {"ipv4": "ipv4_hosts", "ipv6": "ipv6_hosts", "nd_targets": "nd_target_hosts"}


def _declare(names: tuple[str, ...]) -> str:
    return "".join(f"\tset {name} {{ {SETS[name][0]};{' flags interval;' if SETS[name][2] else ''} }}\n"
                   for name in names)


_SETS = _declare(VIF_SETS)
ARP_SETS = ("vifs", "macs", "ipv4_hosts", "ipv4")  # routed vifs' ARP into dom0: table arp xenscripts
_ARP_SETS = _declare(ARP_SETS)

# ARP: Ethernet/IPv4 only, requests and replies only, sender = the guest; a reply sent to a
# group address must be a gratuitous one about one of the guest's own addresses.
_ARP_RULES = """\
		arp htype != 1 drop
		arp ptype != ip drop
		arp hlen != 6 drop
		arp plen != 4 drop
		arp operation != { request, reply } drop
		iifname . arp saddr ether != @macs drop
		arp operation request arp saddr ip 0.0.0.0 accept
		iifname . arp saddr ip != @ipv4_hosts iifname . arp saddr ip != @ipv4 drop
		arp operation reply arp daddr ether & 01:00:00:00:00:00 == 01:00:00:00:00:00 \
iifname . arp daddr ip != @ipv4_hosts iifname . arp daddr ip != @ipv4 drop
		accept
"""

# IPv4: DHCP discovery from 0.0.0.0, else only its addresses; nothing to DHCP clients (68)
# unless the vif is in @dhcp_servers; no ICMP redirects. Every IPv4 fragment carries the
# source address, and only a first fragment carries ports (a datagram to 68 needs it).
_IP_RULES = """\
		ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
		iifname . ip saddr != @ipv4_hosts iifname . ip saddr != @ipv4 drop
		udp dport 68 iifname != @dhcp_servers drop
		icmp type redirect drop
		accept
"""

# IPv6: no routing header; a fragment only of TCP, UDP or ESP (so no fragmented ICMPv6 hides
# a neighbour discovery message); no router advertisement, redirect, renumbering or MLD query;
# neighbour discovery checked field by field (nd_from_guest); else only its addresses, and
# nothing to DHCPv6 clients (546) unless the vif is in @dhcp_servers.
_IP6_RULES = """\
		exthdr rt exists drop
		exthdr frag exists frag nexthdr != { tcp, udp, esp } drop
		icmpv6 type vmap { nd-router-solicit : jump nd_from_guest, nd-neighbor-solicit : jump nd_from_guest, \
nd-neighbor-advert : jump nd_from_guest, nd-router-advert : drop, nd-redirect : drop, router-renumbering : drop, \
mld-listener-query : drop }
		ip6 saddr :: icmpv6 type mld2-listener-report accept
		iifname . ip6 saddr != @ipv6_hosts iifname . ip6 saddr != @ipv6 drop
		udp dport 546 iifname != @dhcp_servers drop
		accept
"""

# Neighbour discovery: no extension header; from :: only duplicate address detection of its
# own addresses (no option, or a nonce); else from its addresses, an advertisement only for
# its own addresses, and the one link-layer option allowed is its own MAC.
_ND_RULES = """\
		ip6 nexthdr != ipv6-icmp drop
		ip6 saddr :: icmpv6 type != nd-neighbor-solicit drop
		ip6 saddr :: iifname . @th,64,128 != @nd_target_hosts iifname . @th,64,128 != @nd_targets drop
		ip6 saddr :: ip6 length 24 accept
		ip6 saddr :: ip6 length 32 @th,192,16 0x0e01 accept
		ip6 saddr :: drop
		iifname . ip6 saddr != @ipv6_hosts iifname . ip6 saddr != @ipv6 drop
		icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd_target_hosts iifname . @th,64,128 != @nd_targets \
drop
		icmpv6 type nd-router-solicit ip6 length 8 accept
		icmpv6 type nd-router-solicit ip6 length 16 @th,64,16 0x0101 iifname . @th,80,48 @nd_macs accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 length 24 accept
		icmpv6 type nd-neighbor-solicit ip6 length 32 @th,192,16 0x0101 iifname . @th,208,48 @nd_macs accept
		icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,16 0x0201 iifname . @th,208,48 @nd_macs accept
		drop
"""

# Before conntrack (-200): a dropped frame never creates a connection.
_GATE = """\
		iifname != @vifs accept
		iifname . ether saddr != @macs drop
"""

def _table(family: str, sets: str, hook: str, chains: dict[str, str]) -> str:
    """One table: declare it, its sets and chains (``add``: kept if there), flush and refill the chains."""
    declare = "".join(f"\tchain {name} {{ {hook if name == 'from_guest' else ''}}}\n" for name in chains)
    flush = "".join(f"flush chain {family} xenscripts {name}\n" for name in chains)
    fill = "".join(f"\tchain {name} {{\n{rules}\t}}\n" for name, rules in chains.items())
    return (f"table {family} xenscripts {{\n{sets}{declare}}}\n{flush}"
            f"table {family} xenscripts {{\n{fill}}}\n")


_PREROUTING = "type filter hook prerouting priority -300; policy accept; "

# family -> chain -> its rules (one per line)
CHAINS = {
    "bridge": {
        "from_guest": _GATE + """\
		ether type vmap { arp : jump arp_from_guest, ip : jump ip_from_guest, ip6 : jump ip6_from_guest }
		drop
""",
        "arp_from_guest": _ARP_RULES, "ip_from_guest": _IP_RULES, "ip6_from_guest": _IP6_RULES,
        "nd_from_guest": _ND_RULES},
    "inet": {
        "from_guest": _GATE + """\
		meta nfproto vmap { ipv4 : jump ip_from_guest, ipv6 : jump ip6_from_guest }
""",
        "ip_from_guest": _IP_RULES, "ip6_from_guest": _IP6_RULES, "nd_from_guest": _ND_RULES},
    # routed vifs: the inet family does not see ARP, so ARP into dom0 gets its own table
    "arp": {"from_guest": "\t\tiifname != @vifs accept\n" + _ARP_RULES},
}
_HOOKS = {"bridge": _PREROUTING, "inet": _PREROUTING, "arp": "type filter hook input priority 0; policy accept; "}
TABLES = {family: _table(family, _ARP_SETS if family == "arp" else _SETS, _HOOKS[family], chains)
          for family, chains in CHAINS.items()}


def rule_counts(family: str) -> dict[str, int]:
    """How many rules each chain of our *family* table holds when it is whole."""
    return {name: len(rules.splitlines()) for name, rules in CHAINS[family].items()}


def table_sets(family: str) -> tuple[str, ...]:
    """The per-vif sets of our *family* table."""
    return ARP_SETS if family == "arp" else VIF_SETS
