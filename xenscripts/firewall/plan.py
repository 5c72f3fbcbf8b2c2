"""The planner: which rules a vif or a network needs, per backend. Pure: no root, no I/O.

compat (upstream's §4.1 rules, on unless ``firewall=none``) goes into the
host's ``filter FORWARD`` through a per-vif chain ``xs-<dev>`` jumped to for
the vif's traffic in and out; antispoof is the per-vif chain
``xs-spoof-<dev>`` (legacy xtables) or elements of our nft sets (nft).
"""

from __future__ import annotations

import ipaddress

from .model import NftElement, XtRule, XtTable

DHCP_CLIENT = ("-p", "udp", "-m", "udp", "--sport", "68", "--dport", "67")
DHCP_SERVER = ("-p", "udp", "-m", "udp", "--sport", "67", "--dport", "68")


def compat_chain(dev: str) -> str:
    return f"xs-{dev}"


def spoof_chain(dev: str) -> str:
    return f"xs-spoof-{dev}"


def network_chain(netdev: str) -> str:
    return f"xs-net-{netdev}"


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


def _from_vif(kind: str, dev: str, hook: str = "FORWARD") -> tuple[str, ...]:
    """Match the vif's traffic into the host: the bridge port (physdev) or the routed interface."""
    if kind != "bridge":
        return ("-i", dev)
    if hook == "INPUT":
        return ("-m", "physdev", "--physdev-in", dev)
    return ("-m", "physdev", "--physdev-in", dev, "--physdev-is-bridged")


def _to_vif(kind: str, dev: str) -> tuple[str, ...]:
    if kind != "bridge":
        return ("-o", dev)
    return ("-m", "physdev", "--physdev-out", dev, "--physdev-is-bridged")


def compat_rules(kind: str, dev: str, ips: tuple[str, ...]) -> XtTable:
    """Upstream's FORWARD ACCEPT rules for one vif: from its addresses (or all), DHCP, and to it."""
    chain = compat_chain(dev)
    rules = [XtRule(chain, (*_to_vif(kind, dev), "-j", "ACCEPT"))]
    addrs = networks(ips, 4)
    if addrs or ips:
        rules += [XtRule(chain, ("-s", a, "-j", "ACCEPT")) for a in addrs]
        rules.append(XtRule(chain, (*DHCP_CLIENT, "-j", "ACCEPT")))
    else:
        rules.append(XtRule(chain, ("-j", "ACCEPT")))
    jumps = [XtRule("FORWARD", (*_from_vif(kind, dev), "-j", chain)),
             XtRule("FORWARD", (*_to_vif(kind, dev), "-j", chain))]
    return XtTable(chains={chain: rules}, jumps=jumps)


def _mac_rule(chain: str, mac: str) -> XtRule:
    return XtRule(chain, ("-m", "mac", "!", "--mac-source", mac, "-j", "DROP"))


def spoof_rules(kind: str, dev: str, mac: str, ips: tuple[str, ...], ipv6: bool) -> XtTable:
    """Legacy antispoof for one vif and IP version: its MAC, its addresses, DHCP/ND, else DROP."""
    chain = spoof_chain(dev)
    rules = [_mac_rule(chain, mac)]
    if ipv6:
        rules += [XtRule(chain, ("-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", t, "-j", "DROP"))
                  for t in ("134", "137")]  # router advertisement, redirect
        rules.append(XtRule(chain, ("-p", "udp", "-m", "udp", "--sport", "547", "-j", "DROP")))
        rules += [XtRule(chain, ("-s", "::/128", "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", t,
                                 "-j", "RETURN")) for t in ("135", "143")]  # DAD, MLDv2 report
        addrs = [f"{link_local(mac)}/128", *networks(ips, 6)]
    else:
        rules.append(XtRule(chain, (*DHCP_SERVER, "-j", "DROP")))
        rules.append(XtRule(chain, ("-s", "0.0.0.0/32", "-d", "255.255.255.255/32", *DHCP_CLIENT,
                                    "-j", "RETURN")))
        addrs = networks(ips, 4)
    rules += [XtRule(chain, ("-s", a, "-j", "RETURN")) for a in addrs]
    rules.append(XtRule(chain, ("-j", "DROP")))
    jumps = [XtRule("FORWARD", (*_from_vif(kind, dev), "-j", chain)),
             XtRule("INPUT", (*_from_vif(kind, dev, "INPUT"), "-j", chain))]
    return XtTable(ipv6=ipv6, chains={chain: rules}, jumps=jumps)


def legacy_vif_tables(kind: str, dev: str, mac: str | None, ips: tuple[str, ...], compat: bool,
                      antispoof: bool) -> list[XtTable]:
    """Everything the legacy backend writes for one vif: IPv4 (antispoof jumps first), then IPv6."""
    v4 = XtTable()
    if antispoof and mac:
        _merge(v4, spoof_rules(kind, dev, mac, ips, ipv6=False))
    if compat:
        _merge(v4, compat_rules(kind, dev, ips))
    tables = [v4] if v4 else []
    if antispoof and mac:
        tables.append(spoof_rules(kind, dev, mac, ips, ipv6=True))
    return tables


def _merge(into: XtTable, other: XtTable) -> None:
    into.chains.update(other.chains)
    into.jumps += other.jumps


def arp_rules(dev: str, mac: str, ips: tuple[str, ...]) -> list[tuple[str, ...]]:
    """arptables-legacy rules of the vif's chain: ARP only with its MAC and one of its addresses
    (or 0.0.0.0, a probe)."""
    chain = spoof_chain(dev)
    rules: list[tuple[str, ...]] = [("-A", chain, "!", "--source-mac", mac, "-j", "DROP")]
    for addr in ("0.0.0.0", *networks(ips, 4)):
        rules.append(("-A", chain, "-s", addr.removesuffix("/32"), "-j", "RETURN"))
    rules.append(("-A", chain, "-j", "DROP"))
    return rules


def arp_jumps(kind: str, dev: str, mac: str) -> list[tuple[str, ...]]:
    """Where ARP from the vif meets arptables: bridged ARP in FORWARD (br_netfilter) by port, and
    in INPUT with the bridge as in-interface, so by the guest's MAC; routed ARP in INPUT by port."""
    chain = spoof_chain(dev)
    if kind != "bridge":
        return [("INPUT", "-i", dev, "-j", chain)]
    return [("FORWARD", "-i", dev, "-j", chain), ("INPUT", "--source-mac", mac, "-j", chain)]


def nft_families(kind: str) -> tuple[str, ...]:
    """Our nft tables for the vif: bridge family for bridge ports; inet and arp for routed vifs."""
    return ("bridge",) if kind == "bridge" else ("inet", "arp")


def nft_vif_elements(kind: str, dev: str, mac: str, ips: tuple[str, ...]) -> list[NftElement]:
    """The set elements that let a vif's own traffic through; ``vifs`` (filtering on) goes last."""
    fam = nft_families(kind)[0]
    elements = [NftElement(fam, "macs", (dev, mac))]
    elements += [NftElement(fam, "ipv4", (dev, a.removesuffix("/32"))) for a in networks(ips, 4)]
    elements += [NftElement(fam, "ipv6", (dev, a.removesuffix("/128")))
                 for a in [f"{link_local(mac)}/128", *networks(ips, 6)]]
    elements.append(NftElement(fam, "vifs", (dev,)))
    if kind != "bridge":  # ARP into dom0 from a routed vif: table arp xenscripts
        elements += [NftElement("arp", e.set, e.key) for e in elements if e.set in ("macs", "ipv4", "vifs")]
    return elements


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
