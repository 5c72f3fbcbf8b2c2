"""Antispoof on Open vSwitch: OpenFlow flows per port under a per-vif cookie (xen-api's "locked" mode).

OVS-switched frames never cross netfilter, so iptables and nft cannot see
them; the switch's own flow table can. Per port: frames from the guest's
MAC with its addresses (IPv4, ARP, IPv6 with its EUI-64 link-local and ND
from and about only its own addresses), DHCP and DHCPv6 as a client only,
and a drop of everything else from that port. Router advertisements,
redirects, MLD queries and DHCP server replies from the guest are dropped.
Every flow carries the vif's cookie, so the set is replaced or removed in
one bundle by cookie. What OpenFlow cannot match (IPv6 extension headers
such as a routing header) is forwarded when it comes from the guest's own
address: docs/differences.md, O8.

``flows()`` is pure (golden-tested); ``install``/``remove`` hand the text
to ``ovs-ofctl --bundle add-flows`` (one atomic OpenFlow 1.4 bundle) through
an executor tests may replace.
"""

from __future__ import annotations

import subprocess
import zlib
from collections.abc import Callable, Mapping, Sequence

from ..core.errors import HotplugError
from .plan import link_local, networks

COOKIE_PREFIX = 0x78730000_00000000  # "xs": ours, whatever else programs the switch
HASH_BIT = 0x0000_8000_0000_0000  # a cookie made from the device's name (no domid/devid)
TAP_BIT = 0x0000_4000_0000_0000  # an HVM guest's emulated NIC (vifD.N-emu), beside its PV vif vifD.N
ALL_BITS = "/-1"
Executor = Callable[[Sequence[str], str, Mapping[str, str]], None]


def cookie(domid: int | None, devid: int | None, dev: str, tap: bool = False) -> int:
    """The vif's cookie: ``0x7873`` + domid + devid (+ TAP_BIT for the emulated NIC, whose ids are its
    PV vif's), or a hash of the name when there are no ids."""
    if domid is not None and devid is not None:
        return COOKIE_PREFIX | (TAP_BIT if tap else 0) | (domid & 0x3FFFFFFF) << 16 | (devid & 0xFFFF)
    return COOKIE_PREFIX | HASH_BIT | zlib.crc32(dev.encode())


def flows(ofport: int, mac: str, ips: tuple[str, ...], vif_cookie: int, untagged_only: bool = True) -> list[str]:
    """The flows (``ovs-ofctl`` syntax, highest priority first) that lock port *ofport* to *mac*/*ips*.

    The same policy as the Linux bridge's nft table (firewall/nft.py): every
    frame from the guest's MAC, IPv4/ARP/IPv6 only from its addresses,
    neighbour solicitations and advertisements from its addresses about its
    addresses (DAD: from ``::`` for its own), DHCP/DHCPv6 as a client only; no
    router advertisements, redirects, MLD queries or router renumbering.
    *untagged_only* (a port with no VLANs of its own, which OVS makes a trunk
    of every VLAN): no 802.1Q-tagged frame either. A port with a tag or trunks
    keeps the VLANs OVS lets through it.
    """
    head = f"cookie={vif_cookie:#x},in_port={ofport}"
    own = f"{head},dl_src={mac}"
    no_ll = "00:00:00:00:00:00"  # nd_sll/nd_tll of a message without that option
    out = [f"priority=8200,{head},vlan_tci=0x1000/0x1000,actions=drop"] if untagged_only else []
    out += [
        # the guest is a client: nothing from a DHCP/DHCPv6 server's port or to a client's port
        f"priority=8100,udp,{head},tp_src=67,actions=drop",
        f"priority=8100,udp,{head},tp_dst=68,actions=drop",
        f"priority=8100,udp6,{head},tp_src=547,actions=drop",
        f"priority=8100,udp6,{head},tp_dst=546,actions=drop",
        f"priority=8100,icmp,{head},icmp_type=5,actions=drop",  # redirect
        # MLD query, router advertisement, redirect, router renumbering
        *(f"priority=8100,icmp6,{head},icmp_type={t},actions=drop" for t in (130, 134, 137, 138)),
        f"priority=8000,udp,{own},nw_src=0.0.0.0,tp_src=68,tp_dst=67,actions=NORMAL",
    ]
    v4 = [a.removesuffix("/32") for a in networks(ips, 4)]
    v6 = [f"{link_local(mac)}", *(a.removesuffix("/128") for a in networks(ips, 6))]
    # neighbour discovery: solicitations from our addresses carry our MAC (or none); DAD asks about
    # our own addresses from ::, with no MAC; advertisements from our addresses name our addresses
    out += [f"priority=8000,icmp6,{own},ipv6_src={a},icmp_type=135,nd_sll={sll},actions=NORMAL"
            for a in v6 for sll in (mac, no_ll)]
    out += [f"priority=8000,icmp6,{own},ipv6_src=::,icmp_type=135,nd_target={t},nd_sll={no_ll},actions=NORMAL"
            for t in v6]
    out += [f"priority=8000,icmp6,{own},ipv6_src={a},icmp_type=136,nd_target={t},nd_tll={tll},actions=NORMAL"
            for a in v6 for t in v6 for tll in (mac, no_ll)]
    out += [f"priority=7900,icmp6,{head},icmp_type={t},actions=drop" for t in (135, 136)]
    out.append(f"priority=7000,icmp6,{own},ipv6_src=::,icmp_type=143,actions=NORMAL")  # MLDv2 before DAD
    out.append(f"priority=7000,arp,{own},arp_op=1,arp_sha={mac},arp_spa=0.0.0.0,actions=NORMAL")  # ARP probe
    out += [f"priority=7000,arp,{own},arp_sha={mac},arp_spa={a},actions=NORMAL" for a in v4]
    out += [f"priority=6000,ip,{own},nw_src={a},actions=NORMAL" for a in v4]
    out += [f"priority=5000,ipv6,{own},ipv6_src={a},actions=NORMAL" for a in v6]
    out.append(f"priority=4000,{head},actions=drop")
    return out


def bundle_text(vif_cookie: int, new_flows: list[str]) -> str:
    """One bundle: the vif's old flows out, its new ones in (``ovs-ofctl add-flows`` file syntax)."""
    lines = [f"delete cookie={vif_cookie:#x}{ALL_BITS}"]
    lines += [f"add {flow}" for flow in new_flows]
    return "\n".join(lines) + "\n"


def ofctl(argv: Sequence[str], stdin: str, env: Mapping[str, str]) -> None:
    """The real executor: ``ovs-ofctl ARGV`` with *stdin*; a failure is a HotplugError with its words."""
    try:
        cp = subprocess.run(["ovs-ofctl", *argv], input=stdin, capture_output=True, text=True, timeout=10,
                            env=dict(env), check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HotplugError(f"ovs-ofctl {' '.join(argv)}: {e}") from None
    if cp.returncode != 0:
        raise HotplugError(f"ovs-ofctl {' '.join(argv)} failed: {cp.stderr.strip() or cp.returncode}")


def ofctl_env(env: Mapping[str, str]) -> dict[str, str]:
    """ovs-ofctl finds a bridge's ``.mgmt`` socket under OVS_RUNDIR, as the daemons put it."""
    out = {"PATH": env.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    if env.get("OVS_RUNDIR"):
        out["OVS_RUNDIR"] = env["OVS_RUNDIR"]
    return out


def install(bridge: str, ofport: int, mac: str, ips: tuple[str, ...], vif_cookie: int,
            env: Mapping[str, str], run: Executor = ofctl, untagged_only: bool = True) -> None:
    """Replace the vif's flows on *bridge* in one atomic bundle."""
    run(["--bundle", "add-flows", bridge, "-"],
        bundle_text(vif_cookie, flows(ofport, mac, ips, vif_cookie, untagged_only)), ofctl_env(env))


def remove(bridge: str, vif_cookie: int, env: Mapping[str, str], run: Executor = ofctl) -> None:
    """Delete every flow with the vif's cookie from *bridge*."""
    run(["del-flows", bridge, f"cookie={vif_cookie:#x}{ALL_BITS}"], "", ofctl_env(env))
