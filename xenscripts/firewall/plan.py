"""The planner: which rules a vif or a network needs, per backend. Pure: no root, no I/O.

compat (upstream's ``frob_iptable`` rules, on unless ``firewall=none``) goes into the
host's ``filter FORWARD`` through a per-vif chain ``xs-<dev>`` jumped to for
the vif's traffic in and out; antispoof is elements of our nft sets (both
backends; the rules are tables.py).
"""

from __future__ import annotations

import ipaddress

from .model import NftElement, XtRule, XtTable
from .tables import ARP_SETS, HOST_SETS

DHCP_CLIENT = ("-p", "udp", "-m", "udp", "--sport", "68", "--dport", "67")
REPLIES = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")


def compat_chain(dev: str) -> str:
    return f"xs-{dev}"


def network_chain(netdev: str) -> str:
    """A network's chain: ``xsnet-`` never begins a vif's ``xs-<dev>`` (a vif may be called ``net-eth0``)."""
    return f"xsnet-{netdev}"


def networks(ips: tuple[str, ...], version: int) -> list[str]:
    """The vif's addresses of one IP version, as ``addr/len`` (host addresses get /32 or /128)."""
    out = []
    for item in ips:
        net = ipaddress.ip_network(item, strict=False)
        if net.version == version and str(net) not in out:
            out.append(str(net))
    return out


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address a guest derives from *mac*."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def _from_vif(kind: str, dev: str) -> tuple[str, ...]:
    """Match the vif's forwarded traffic: the bridge port (physdev) or the routed interface."""
    if kind != "bridge":
        return ("-i", dev)
    return ("-m", "physdev", "--physdev-in", dev, "--physdev-is-bridged")


def _to_vif(kind: str, dev: str) -> tuple[str, ...]:
    if kind != "bridge":
        return ("-o", dev)
    return ("-m", "physdev", "--physdev-out", dev, "--physdev-is-bridged")


def compat_rules(kind: str, dev: str, ips: tuple[str, ...]) -> XtTable:
    """Upstream's FORWARD ACCEPT rules for one vif: from its addresses (or all), DHCP, and to it.

    Bridged: upstream's physdev rules. Routed and NAT vifs (which upstream's
    rules never match): the same from the guest, but towards it only replies
    to its own connections.
    """
    chain = compat_chain(dev)
    src: tuple[str, ...] = () if kind == "bridge" else ("-i", dev)
    to = (*_to_vif(kind, dev), *(REPLIES if kind != "bridge" else ()), "-j", "ACCEPT")
    rules = [XtRule(chain, to)]
    addrs = networks(ips, 4)
    if addrs or ips:
        rules += [XtRule(chain, (*src, "-s", a, "-j", "ACCEPT")) for a in addrs]
        rules.append(XtRule(chain, (*src, *DHCP_CLIENT, "-j", "ACCEPT")))
    else:
        rules.append(XtRule(chain, (*src, "-j", "ACCEPT")))
    jumps = [XtRule("FORWARD", (*_from_vif(kind, dev), "-j", chain)),
             XtRule("FORWARD", (*_to_vif(kind, dev), "-j", chain))]
    return XtTable(chains={chain: rules}, jumps=jumps)


def nft_families(kind: str) -> tuple[str, ...]:
    """Our nft tables for the vif: bridge family for bridge ports; inet and arp for routed vifs."""
    return ("bridge",) if kind == "bridge" else ("inet", "arp")


def nft_vif_elements(kind: str, dev: str, mac: str, ips: tuple[str, ...],
                     dhcp_server: bool = False) -> list[NftElement]:
    """The set elements that let a vif's own traffic through; ``vifs`` (filtering on) goes last."""
    fam = nft_families(kind)[0]
    v6 = [f"{link_local(mac)}/128", *networks(ips, 6)]
    elements = [NftElement(fam, "macs", (dev, mac)), NftElement(fam, "nd_macs", (dev, _hex(mac)))]
    # host addresses in the hash sets, prefixes in the interval sets (tables.SETS says why)
    elements += [NftElement(fam, _set_for("ipv4", a, "/32"), (dev, a.removesuffix("/32"))) for a in networks(ips, 4)]
    elements += [NftElement(fam, _set_for("ipv6", a, "/128"), (dev, a.removesuffix("/128"))) for a in v6]
    elements += [NftElement(fam, _set_for("nd_targets", a, "/128"), (dev, _hex_range(a))) for a in v6]
    if dhcp_server:
        elements.append(NftElement(fam, "dhcp_servers", (dev,)))
    elements.append(NftElement(fam, "vifs", (dev,)))
    if kind != "bridge":  # ARP into dom0 from a routed vif: table arp xenscripts
        elements += [NftElement("arp", e.set, e.key) for e in elements if e.set in ARP_SETS]
    return elements


def _set_for(interval_set: str, network: str, host: str) -> str:
    """The hash set (tables.HOST_SETS) for a host address (*network* ends in *host*: /32, /128), else *interval_set*."""
    return HOST_SETS[interval_set] if network.endswith(host) else interval_set


def _hex(mac: str) -> str:
    """A MAC as the 48-bit integer nft compares a neighbour discovery option with."""
    return "0x" + mac.replace(":", "").lower()


def _hex_range(network: str) -> str:
    """An IPv6 network as the 128-bit integer (or ``first-last`` range) of a neighbour discovery target."""
    net = ipaddress.IPv6Network(network)
    first, last = int(net.network_address), int(net.broadcast_address)
    return f"0x{first:032x}" if first == last else f"0x{first:032x}-0x{last:032x}"


def network_bridge_rules(netdev: str) -> XtTable:
    """network-bridge antispoof=yes: FORWARD policy DROP, bridged traffic from the physical port accepted."""
    chain = network_chain(netdev)
    return XtTable(policies={"FORWARD": "DROP"},
                   chains={chain: [XtRule(chain, ("-m", "physdev", "--physdev-in", netdev, "-j", "ACCEPT"))]},
                   appends=[XtRule("FORWARD", ("-j", chain))])


def network_nat_rules(netdev: str) -> XtTable:
    """network-nat on a legacy host: upstream's one MASQUERADE rule out of *netdev*."""
    return XtTable(table="nat", appends=[XtRule("POSTROUTING", ("-o", netdev, "-j", "MASQUERADE"))])


def nft_nat_element(netdev: str) -> NftElement:
    return NftElement("ip", "masquerade_out", (netdev,))
