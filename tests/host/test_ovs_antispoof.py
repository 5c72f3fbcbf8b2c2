"""antispoof=yes on Open vSwitch, proven with one-way probes (xensim/probe.py).

The attacker (guest 1, backend ``ip`` = its address) sends hand-made frames
from its own interface; they count as through when they arrive at the
victim's (guest 2's) interface. Each test has its control: the same probes
with antispoof=no arrive. Flows are read with ``ovs-ofctl``.
"""

from __future__ import annotations

import pytest

from tests.host import ovsbed as bed
from tests.host.ovsbed import BRIDGE, guest, hotplug, ok
from xensim import probe

ovsbed, simhost, ovs = bed.ovsbed, bed.simhost, bed.ovs  # the module's fixtures
FORGED_MAC = "00:16:3e:66:66:66"
COOKIE_G1 = "cookie=0x7873000000010000"  # 0x7873 + domid 1 + devid 0


def two_guests(host, ovs, antispoof: str):
    attacker = guest(host, 1, ip=host.guest_ip(1))
    victim = guest(host, 2)
    ok(hotplug(host, ovs, 1, extra_args=(f"antispoof={antispoof}",)))
    ok(hotplug(host, ovs, 2))
    return attacker, victim


def forgeries(host, attacker, victim) -> dict[str, bytes]:
    mac, ip = attacker.mac, attacker.ip
    lladdr = "fe80::216:3eff:fe00:100"  # the attacker's own EUI-64 link-local
    return {
        "forged MAC": probe.udp4(FORGED_MAC, ip, victim.ip, b"xs-forged-mac"),
        "forged IPv4 source": probe.udp4(mac, f"10.{host.k}.0.99", victim.ip, b"xs-forged-ip"),
        "ARP claiming the victim's address": probe.arp(mac, victim.ip, victim.ip, b"xs-forged-arp"),
        "DHCP server reply": probe.udp4(mac, ip, "255.255.255.255", b"xs-dhcp-server", sport=67, dport=68),
        "router advertisement": probe.icmp6(mac, lladdr, 134, b"xs-forged-ra"),
        "forged IPv6 source": probe.icmp6(mac, "fe80::bad", 128, b"xs-forged-ip6"),
        "NA claiming the victim's link-local": probe.neighbour_advert(mac, lladdr, "fe80::216:3eff:fe00:200",
                                                                     b"xs-forged-na"),
        "other ethertype": probe.ether(mac, 0x88B5, b"xs-other-ethertype"),
    }


def honest(attacker) -> dict[str, bytes]:
    return {
        "own UDP": probe.udp4(attacker.mac, attacker.ip, "255.255.255.255", b"xs-own-udp"),
        "own ARP": probe.arp(attacker.mac, attacker.ip, attacker.ip, b"xs-own-arp", op=1),
        "own IPv6 echo": probe.icmp6(attacker.mac, "fe80::216:3eff:fe00:100", 128, b"xs-own-ip6"),
        "own NA": probe.neighbour_advert(attacker.mac, "fe80::216:3eff:fe00:100", "fe80::216:3eff:fe00:100",
                                         b"xs-own-na"),
    }


def shoot(attacker, victim, frames: dict[str, bytes]) -> probe.Capture:
    with probe.Capture(victim.ns, victim.guest_if) as seen:
        probe.send(attacker.ns, attacker.guest_if, [*frames.values(), probe.end_frame(attacker.mac, attacker.ip)])
    assert seen.ended(), "the end frame never arrived: the run proves nothing"
    return seen


def marker(frame: bytes) -> bytes:
    return frame[frame.index(b"xs-"):]


@pytest.mark.parametrize("antispoof", ["no", "yes"])
def test_forgeries_stopped_only_with_antispoof(simhost, ovs, antispoof):
    attacker, victim = two_guests(simhost, ovs, antispoof)
    bad, good = forgeries(simhost, attacker, victim), honest(attacker)
    seen = shoot(attacker, victim, {**bad, **good})
    for name, frame in good.items():
        assert seen.saw(marker(frame)), f"{name} did not arrive"
    through = sorted(name for name, frame in bad.items() if seen.saw(marker(frame)))
    if antispoof == "no":
        assert through == sorted(bad), "control run: every forgery must get through without antispoof"
    else:
        assert through == []


def test_flows_are_in_place_before_the_port_comes_up(simhost, ovs):
    """Forged frames sent all through the online: none ever reaches the victim; the honest ones do."""
    attacker = guest(simhost, 1, ip=simhost.guest_ip(1))
    victim = guest(simhost, 2)
    ok(hotplug(simhost, ovs, 2))
    forged = probe.udp4(FORGED_MAC, attacker.ip, victim.ip, b"xs-flood-forged")
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
    forged = probe.udp4(FORGED_MAC, attacker.ip, victim.ip, b"xs-forged-after-unlock")
    assert shoot(attacker, victim, {"forged": forged}).saw(b"xs-forged-after-unlock")
