"""antispoof=yes on Open vSwitch, proven with one-way probes seen at the victim.

The attacker (guest 1, three addresses in its backend ``ip``) sends frames
built byte by byte (xensim/probes.py) from its own NIC; a probe got through
when its marker reaches the victim's (guest 2's) NIC, or, for the FDB probe,
when the switch learns the victim's MAC on the attacker's port
(``ovs-appctl fdb/show``); the round ends with an own frame of g1's, so a
missing probe is stopped, not late. The catalogue is the Linux bridge's
(tests/host/test_antispoof_probes.py, ``bridged_round``), probe for probe
under the same names, plus neighbour-discovery forgeries and a tagged frame
into another VLAN; where OVS differs it is said at the probe
(docs/differences.md, O8). Every round runs first
with antispoof=no (the control: every probe arrives, so the assertion can
fail), then with antispoof=yes, where only the attacker's own traffic may.
Flows are read with ``ovs-ofctl``.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.host import ovsbed as bed
from tests.host.ovsbed import BRIDGE, guest, hotplug, ok
from xensim import probe
from xensim import probes as p
from xensim.poll import wait_until

ovsbed, simhost, ovs = bed.ovsbed, bed.simhost, bed.ovs  # the module's fixtures
COOKIE_G1 = "cookie=0x7873000000010000"  # 0x7873 + domid 1 + devid 0


def nd_marker(name: str) -> bytes:
    """The marker as a well-formed ND option (type 253, RFC 4727's experiment): parsers skip it."""
    data = p.marked(name)
    units = (len(data) + 2 + 7) // 8
    return struct.pack("!BB", 253, units) + data + b"\0" * (units * 8 - 2 - len(data))


def solicitation(target: str, sll: str | None, name: str) -> bytes:
    """A neighbour solicitation for *target* (with *sll* as its source link-layer option, or none)."""
    option = struct.pack("!BB6s", 1, 1, probe.mac_bytes(sll)) if sll else b""
    return p.icmpv6(135, 0, struct.pack("!I16s", 0, socket.inet_pton(socket.AF_INET6, target)) + option
                    + nd_marker(name))


def redirect4(src: str, dst: str, name: str) -> bytes:
    """An ICMP redirect (type 5) from *src*: "reach *dst* through me"."""
    inner = p.ipv4(dst, src, 17, p.udp(1, 1, b""))[:28]
    body = struct.pack("!BBHI", 5, 1, 0, 0) + inner + p.marked(name)
    return p.ipv4(src, dst, 1, body[:2] + struct.pack("!H", probe.checksum(body)) + body[4:])


@pytest.fixture
def pair(simhost):
    """g1 (the attacker: three addresses) and g2 (the victim: two) on ovsbr0, not plugged yet."""
    host, k = simhost, simhost.k
    g1 = guest(host, 1, ip=f"{host.guest_ip(1)} 10.{k}.0.51 fd00:{k}::11")
    g2 = guest(host, 2, ip=f"{host.guest_ip(2)} fd00:{k}::12")
    host.ip(g1.ns, "addr", "add", f"10.{k}.0.51/24", "dev", "eth0")
    host.ip(g1.ns, "addr", "add", f"fd00:{k}::11/64", "dev", "eth0", "nodad")
    host.ip(g2.ns, "addr", "add", f"fd00:{k}::12/64", "dev", "eth0", "nodad")
    return host, g1, g2


def plug(host, switch, command: str, *args: str) -> None:
    for domid in (1, 2):
        ok(hotplug(host, switch, domid, command, extra_args=args))


def fdb_port(switch, mac: str) -> int | None:
    """The OpenFlow port the switch sends *mac* to (``ovs-appctl fdb/show``), None when not learned."""
    for line in switch.appctl("fdb/show", BRIDGE).stdout.splitlines()[1:]:
        port, _vlan, address, *_ = line.split()
        if address == mac:
            return int(port)
    return None


def ovs_round(host, switch, g1, g2) -> dict[str, bool]:
    """Every probe of g1 once; for each, whether it reached g2 (own-*: must; the rest: must not)."""
    k = host.k
    g1_v6, g2_v6 = f"fd00:{k}::11", f"fd00:{k}::12"
    ll1, ll2 = p.link_local(g1.mac), p.link_local(g2.mac)
    got: dict[str, bool] = {}

    # FDB: the switch learned g2's MAC on g2's port; a frame from g1 with g2's MAC as source must not move it
    port1, port2 = switch.interface(g1.vif)["ofport"], switch.interface(g2.vif)["ofport"]
    got["fdb-move"] = False
    for _ in range(3):
        assert wait_until(lambda: host.ping(g2.ns, g1.ip, timeout=1), timeout=6, interval=0)
        assert fdb_port(switch, g2.mac) == port2
        p.send(g1.ns, g1.guest_if, [p.ether(p.BROADCAST, g2.mac, 0x88B5, p.marked("fdb"))])
        # ovs-vswitchd learns in its handler threads, after the frame has left the sender: give it a moment
        got["fdb-move"] |= wait_until(lambda: fdb_port(switch, g2.mac) == port1, timeout=1, interval=0.05)
    assert wait_until(lambda: host.ping(g2.ns, g1.ip, timeout=1), timeout=6, interval=0)  # learned back

    v4 = p.udp4

    def v6(name: str, src: str, dst: str, dst_mac: str, sport: int = 40000, dport: int = 9999) -> bytes:
        return p.udp6_frame(name, g1.mac, src, dst, dst_mac, sport, dport)

    def nd(src: str, dst: str, message: bytes) -> bytes:
        return p.ether(p.ALL_NODES_MAC if dst == p.ALL_NODES else p.multicast_mac(dst), g1.mac, 0x86DD,
                       p.icmp6(src, dst, message))

    def arp(name: str, sha: str, spa: str, tpa: str) -> bytes:
        return p.ether(p.BROADCAST, g1.mac, 0x0806, p.arp(1, sha, spa, "00:00:00:00:00:00", tpa) + p.marked(name))

    probes = {
        # g1's own traffic, from each of its addresses: must arrive in both rounds
        "own-v4": v4("own-v4", g1.mac, g1.ip, g2.mac, g2.ip),
        "own-v4-second": v4("own-v4-second", g1.mac, f"10.{k}.0.51", g2.mac, g2.ip),
        "own-v6": v6("own-v6", g1_v6, g2_v6, g2.mac),
        "own-v6-link-local": v6("own-v6-link-local", ll1, ll2, g2.mac),
        "own-dhcp-discover": v4("own-dhcp-discover", g1.mac, "0.0.0.0", p.BROADCAST, "255.255.255.255", 68, 67),
        "own-arp-request": arp("own-arp-request", g1.mac, g1.ip, g2.ip),
        "own-ns": nd(g1_v6, p.solicited_node(g2_v6), solicitation(g2_v6, g1.mac, "own-ns")),
        "own-dad-ns": nd("::", p.solicited_node(g1_v6), solicitation(g1_v6, None, "own-dad-ns")),
        "own-na": nd(ll1, p.ALL_NODES, p.neighbour_advert(g1_v6, g1.mac) + nd_marker("own-na")),
        # the Linux bridge drops it, OVS cannot (it matches no IPv6 extension header): from g1's own address
        "own-v6-routing-header": p.ether(g2.mac, g1.mac, 0x86DD, p.ipv6(
            g1_v6, g2_v6, 43, p.routing_header(17, g2_v6) + p.udp(40000, 9999, p.marked("own-v6-routing-header")))),
        **p.forgeries(g1, g2, k),  # the Linux bridge's catalogue (xensim/probes.py)
        # g1's port has no VLANs, so OVS makes it a trunk of all: its own frame tagged into VLAN 5 hops there
        "vlan-8021q-own-inner-vid-5": v4("vlan-8021q-own-inner-vid-5", g1.mac, g1.ip, g2.mac, g2.ip,
                                         tags=((0x8100, 5),)),
        # the neighbour claims the Linux test looks for in dom0's table, here seen arriving at g2
        "na-override-claims-g2-v6": nd(ll1, p.ALL_NODES, p.neighbour_advert(g2_v6, g1.mac)
                                       + nd_marker("na-override-claims-g2-v6")),
        "arp-claims-g2-v4": arp("arp-claims-g2-v4", g1.mac, g2.ip, g1.ip),
        "arp-forged-sender-mac": arp("arp-forged-sender-mac", p.FORGED_MAC, f"10.{k}.0.51", g2.ip),
        # more neighbour discovery, ICMP: what the nft table also stops
        "ns-from-g2-v6": nd(g2_v6, p.ALL_NODES, solicitation(ll2, g1.mac, "ns-from-g2-v6")),
        "dad-ns-for-g2-v6": nd("::", p.solicited_node(g2_v6), solicitation(g2_v6, None, "dad-ns-for-g2-v6")),
        "na-from-g2-v6": nd(g2_v6, p.ALL_NODES, p.neighbour_advert(g1_v6, g1.mac) + nd_marker("na-from-g2-v6")),
        "icmp-redirect": p.ether(g2.mac, g1.mac, 0x0800, redirect4(g1.ip, g2.ip, "icmp-redirect")),
        "mld-query": nd(ll1, p.ALL_NODES, p.icmpv6(130, 0, struct.pack("!HH16s", 1000, 0, b"\0" * 16))
                        + p.marked("mld-query")),
    }
    with probe.Capture(g2.ns, g2.guest_if, timeout=20) as seen:
        p.send(g1.ns, g1.guest_if, list(probes.values()))
        probe.send(g1.ns, g1.guest_if, [probe.end_frame(g1.mac, g1.ip)])  # g1's own: through in both rounds
    assert seen.ended(), "the end frame never arrived: the round proves nothing"
    got.update({name: seen.saw(f"XSP-{name}-XSP".encode()) for name in probes})
    return got


def test_probes_get_through_only_without_antispoof(pair, ovs):
    host, g1, g2 = pair
    plug(host, ovs, "online", "antispoof=no")
    control = ovs_round(host, ovs, g1, g2)
    assert all(control.values()), sorted(k for k, v in control.items() if not v)  # every probe works without us
    plug(host, ovs, "offline")
    plug(host, ovs, "online", "antispoof=yes")
    guarded = ovs_round(host, ovs, g1, g2)
    through = sorted(name for name, arrived in guarded.items() if arrived and not name.startswith("own-"))
    assert not through, f"with antispoof=yes these still got through: {through}"
    stopped = sorted(name for name, arrived in guarded.items() if not arrived and name.startswith("own-"))
    assert not stopped, f"antispoof=yes stopped g1's own traffic: {stopped}"


def test_a_trunk_port_keeps_its_vlans_under_antispoof(simhost, ovs):
    """A guest given trunks (ovsbr0:10:20) may send its own frames tagged into them, locked or not (the
    untagged-only rule is for ports without VLANs); a forged source inside a trunk VLAN passes only unlocked."""
    trunk = guest(simhost, 1, bridge="ovsbr0:10:20", ip=simhost.guest_ip(1))
    v20 = guest(simhost, 2, bridge="ovsbr0.20")
    ok(hotplug(simhost, ovs, 2))

    def tagged(src_ip: str, payload: bytes) -> bytes:
        return p.ether(p.BROADCAST, trunk.mac, 0x0800, p.ipv4(src_ip, "255.255.255.255", 17, p.udp(
            40000, 9999, payload)), tags=((0x8100, 20),))

    for antispoof in ("no", "yes"):
        ok(hotplug(simhost, ovs, 1, extra_args=(f"antispoof={antispoof}",)))
        with probe.Capture(v20.ns, v20.guest_if, timeout=20) as seen:
            p.send(trunk.ns, trunk.guest_if, [tagged(trunk.ip, p.marked("own-vid-20")),
                                              tagged(f"10.{simhost.k}.0.99", p.marked("forged-vid-20"))])
            probe.send(trunk.ns, trunk.guest_if, [tagged(trunk.ip, probe.END)])  # own: arrives either way
        assert seen.ended(), f"antispoof={antispoof}: g1's own tagged frames never reached VLAN 20"
        assert seen.saw(p.marked("own-vid-20"))
        assert seen.saw(p.marked("forged-vid-20")) == (antispoof == "no"), antispoof


def shoot(attacker, victim, frames: dict[str, bytes]) -> probe.Capture:
    with probe.Capture(victim.ns, victim.guest_if) as seen:
        probe.send(attacker.ns, attacker.guest_if, [*frames.values(), probe.end_frame(attacker.mac, attacker.ip)])
    assert seen.ended(), "the end frame never arrived: the run proves nothing"
    return seen


def test_flows_are_in_place_before_the_port_comes_up(simhost, ovs):
    """Forged frames sent all through the online: none ever reaches the victim; the honest ones do."""
    attacker = guest(simhost, 1, ip=simhost.guest_ip(1))
    victim = guest(simhost, 2)
    ok(hotplug(simhost, ovs, 2))
    forged = probe.udp4(p.FORGED_MAC, attacker.ip, victim.ip, b"xs-flood-forged")
    own = probe.udp4(attacker.mac, attacker.ip, "255.255.255.255", b"xs-flood-own")
    with probe.Capture(victim.ns, victim.guest_if, timeout=30) as seen:
        with probe.Flood(attacker.ns, attacker.guest_if, [forged, own]):
            ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=yes",)))
        probe.send(attacker.ns, attacker.guest_if, [probe.end_frame(attacker.mac, attacker.ip)])
    assert seen.ended() and seen.saw(b"xs-flood-own"), "the port never came up during the flood"
    assert not seen.saw(b"xs-flood-forged")


def test_offline_removes_the_vifs_flows_by_cookie_only(simhost, ovs):
    guest(simhost, 1, ip=simhost.guest_ip(1))
    guest(simhost, 2, ip=simhost.guest_ip(2))
    for domid in (1, 2):
        ok(hotplug(simhost, ovs, domid, extra_args=("antispoof=yes",)))
    mine = [f for f in ovs.flows(BRIDGE) if COOKIE_G1 in f]
    assert any("actions=drop" in f and "priority=4000" in f for f in mine), mine
    assert any(f"nw_src={simhost.guest_ip(1)}" in f for f in mine), mine
    others = [f for f in ovs.flows(BRIDGE) if COOKIE_G1 not in f]
    ok(hotplug(simhost, ovs, 1, "offline"))
    assert [f for f in ovs.flows(BRIDGE) if COOKIE_G1 in f] == []
    assert ovs.flows(BRIDGE) == others  # guest 2's flows and the bridge's NORMAL flow stay


def test_online_twice_keeps_one_set_of_flows(simhost, ovs):
    guest(simhost, 1, ip=simhost.guest_ip(1))
    ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=yes",)))
    first = ovs.flows(BRIDGE)
    ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=yes",)))
    assert ovs.flows(BRIDGE) == first


def test_an_emulated_nic_and_its_pv_vif_keep_their_own_flows(simhost, ovs):
    """An HVM guest's NIC is two ports for a while: vif1.0-emu (tap, add/remove) and vif1.0 (online/offline).
    Each gets its own cookie, so locking one never unlocks the other, nor does removing the emulated one."""
    g = guest(simhost, 1, ip=simhost.guest_ip(1), nic_type="ioemu")
    ok(hotplug(simhost, ovs, 1, "add", type_if="tap", extra_args=("antispoof=yes",)))
    ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=yes",)))
    cookies = {dev: ovs.interface(dev)["external_ids"]["xenscripts-antispoof-cookie"] for dev in (g.vif, g.emu)}
    assert cookies[g.vif] != cookies[g.emu], cookies

    def locked(dev: str) -> bool:
        ofport = ovs.interface(dev)["ofport"]
        return any(f"cookie={cookies[dev]}" in f and f"in_port={ofport}" in f and "actions=drop" in f
                   and "priority=4000" in f for f in ovs.flows(BRIDGE))

    assert locked(g.vif) and locked(g.emu)
    ok(hotplug(simhost, ovs, 1, "remove", type_if="tap"))
    assert locked(g.vif) and not any(f"cookie={cookies[g.emu]}" in f for f in ovs.flows(BRIDGE))


def test_antispoof_with_firewall_none_is_refused(simhost, ovs):
    g = guest(simhost, 1)
    cp = hotplug(simhost, ovs, 1, extra_args=("antispoof=yes", "firewall=none"))
    assert cp.returncode == 1 and "firewall=none" in (simhost.xs.read(f"{g.backend}/hotplug-error") or "")
    assert ovs.port("vif1.0") is None


def test_online_without_antispoof_unlocks_a_locked_port(simhost, ovs):
    attacker = guest(simhost, 1, ip=simhost.guest_ip(1))
    victim = guest(simhost, 2)
    ok(hotplug(simhost, ovs, 2))
    ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=yes",)))
    assert ovs.interface("vif1.0")["external_ids"]["xenscripts-antispoof-cookie"] == "0x7873000000010000"
    ok(hotplug(simhost, ovs, 1, extra_args=("antispoof=no",)))
    assert [f for f in ovs.flows(BRIDGE) if COOKIE_G1 in f] == []
    assert ovs.interface("vif1.0")["external_ids"]["xenscripts-antispoof-cookie"] == "none"
    forged = probe.udp4(p.FORGED_MAC, attacker.ip, victim.ip, b"xs-forged-after-unlock")
    assert shoot(attacker, victim, {"forged": forged}).saw(b"xs-forged-after-unlock")
