"""Antispoof against an attacker who knows the rules: one-way probes from guest g1, looked for at the victim.

Every probe is a frame built byte by byte in g1's namespace and written raw
(AF_PACKET); it needs no reply. Where it must not arrive is watched by an
independent observer: a packet socket on the victim guest's NIC, UDP
sockets in dom0 (what dom0's stack accepted), ``bridge -j fdb`` (whose port
the bridge now sends g2's MAC to), ``ip -j neigh`` in dom0 (what ARP and
neighbour advertisements taught it). Each round runs twice on the same host:
first with ``antispoof=no`` (the control: every attack must get through,
so the assertion can fail), then with ``antispoof=yes``; g1's own traffic
(from each of its several addresses) must arrive in both. Both backends,
both plug orders, bridged and routed vifs, IPv4 and IPv6.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from xensim import probes as p
from xensim.host import SimHost
from xensim.ours import our_command
from xensim.poll import wait_until
from xensim.routed import (
    add_ipv6_uplink,
    dom0_ip6,
    guest_ip6,
    routed_guest_ipv6,
    router_ip6,
    run_network,
    state_dir,
)

BACKENDS = ["nft", "legacy"]
ORDERS = ["g1-first", "g2-first"]
PORT = 9998           # dom0's observer port


def _plug(host: SimHost, script: str, order: str, command: str, *args: str, **env: str) -> None:
    domids = (1, 2) if order == "g1-first" or command == "offline" else (2, 1)
    for d in domids:
        cp = host.run_hotplug(our_command(script), d, command=command, extra_args=args,
                              extra_env={"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": f"{host.workdir}/xtables.lock",
                                         "XENSCRIPTS_STATE_DIR": state_dir(host), **env})
        assert cp.returncode == 0, f"{script} {command} vif{d}.0 {' '.join(args)}: {cp.stderr}"


def _reaches(host: SimHost, ns: str, ip: str) -> bool:
    """A ping that gets through within a few seconds (the first may wait on neighbour discovery)."""
    return wait_until(lambda: host.ping(ns, ip, timeout=1), timeout=6, interval=0)


def _mac_of(host: SimHost, ns: str, ifname: str) -> str:
    return json.loads(host.ip(ns, "-j", "link", "show", ifname).stdout)[0]["address"]


def _neigh(host: SimHost, ip: str) -> set[str]:
    """The link-layer addresses dom0's neighbour table holds for *ip* (any device)."""
    out = json.loads(host.ip(host.dom0, "-j", "neigh", "show", "to", ip).stdout or "[]")
    return {e["lladdr"] for e in out if e.get("lladdr")}


def _fdb_port(host: SimHost, mac: str) -> str | None:
    out = json.loads(host.sh(host.dom0, "bridge", "-j", "fdb", "show", "br", "xenbr0").stdout or "[]")
    return next((e.get("ifname") for e in out if e.get("mac") == mac and "self" not in e.get("flags", [])), None)


def control_then_guarded(host: SimHost, script: str, backend: str, order: str,
                         probe_round: Callable[[], dict[str, bool]]) -> None:
    """The round with antispoof=no (every probe arrives), then with antispoof=yes (only g1's own traffic)."""
    _plug(host, script, order, "online", f"firewall={backend}", "antispoof=no")
    control = probe_round()
    assert all(control.values()), {k: v for k, v in control.items() if not v}  # every probe works without us
    _plug(host, script, order, "offline", f"firewall={backend}")
    _plug(host, script, order, "online", f"firewall={backend}", "antispoof=yes")
    guarded = probe_round()
    through = {name for name, arrived in guarded.items() if arrived and not name.startswith("own-")}
    assert not through, f"with antispoof=yes these still got through: {sorted(through)}"
    stopped = {name for name, arrived in guarded.items() if not arrived and name.startswith("own-")}
    assert not stopped, f"antispoof=yes stopped g1's own traffic: {sorted(stopped)}"


# ------------------------------------------------------------------ bridged
@pytest.fixture
def bridged(simhost):
    """g1 (the attacker, three addresses) and g2 (the victim, two) on xenbr0; dom0 with IPv6 on the bridge."""
    host, k = simhost, simhost.k
    g1 = host.add_guest(1, ip=f"{host.guest_ip(1)} 10.{k}.0.51 fd00:{k}::11")
    g2 = host.add_guest(2, ip=f"{host.guest_ip(2)} fd00:{k}::12")
    host.ip(g1.ns, "addr", "add", f"10.{k}.0.51/24", "dev", "eth0")
    host.ip(g1.ns, "addr", "add", f"fd00:{k}::11/64", "dev", "eth0", "nodad")
    host.ip(g2.ns, "addr", "add", f"fd00:{k}::12/64", "dev", "eth0", "nodad")
    host.ip(host.dom0, "addr", "add", f"fd00:{k}::2/64", "dev", "xenbr0", "nodad")
    return host, g1, g2


def bridged_round(host: SimHost, g1, g2) -> dict[str, bool]:
    """Every probe of g1 once; for each, whether it arrived where it must not (or, for own-*, where it must)."""
    k = host.k
    g2_v6, forged_ip, ll1 = f"fd00:{k}::12", f"10.{k}.0.99", p.link_local(g1.mac)
    bridge_mac = _mac_of(host, host.dom0, "xenbr0")
    got: dict[str, bool] = {}

    # FDB: g2's MAC is learned on its own port; a frame from g1 with g2's MAC as source must not move it
    # (three tries: g2 may itself send, and so teach the bridge again, between the probe and the look)
    got["fdb-move"] = False
    for _ in range(3):
        assert _reaches(host, g2.ns, host.dom0_ip) and _fdb_port(host, g2.mac) == g2.vif
        p.send(g1.ns, "eth0", [p.ether(p.BROADCAST, g2.mac, 0x88B5, p.marked("fdb"))])
        got["fdb-move"] |= _fdb_port(host, g2.mac) == g1.vif
    assert _reaches(host, g2.ns, host.dom0_ip)  # g2 teaches the bridge its port again

    # dom0 knows g2's IPv6 address (so an NA can override it), and no IPv4 neighbour (so ARP can create one)
    assert _reaches(host, host.dom0, g2_v6)
    host.ip(host.dom0, "-4", "neigh", "flush", "all")

    v4 = p.udp4

    def v6(name: str, src: str, dst: str, dst_mac: str, sport: int = 40000, dport: int = 9999) -> bytes:
        return p.udp6_frame(name, g1.mac, src, dst, dst_mac, sport, dport)

    def behind_options(name: str, src: str, dst: str, dst_mac: str, sport: int, dport: int) -> bytes:
        """UDP in IPv6 after a destination options header (the UDP header is not where a fixed offset has it)."""
        return p.ether(dst_mac, g1.mac, 0x86DD, p.ipv6(src, dst, 60, p.options_header(17) + p.checksummed(
            src, dst, 17, p.udp(sport, dport, p.marked(name)), 6), hop_limit=64))

    def arp_marked(name: str, op: int, dst_mac: str, tha: str, tpa: str) -> bytes:
        """ARP from g1 (its own MAC and address as sender), the marker in the frame's trailing padding."""
        return p.ether(dst_mac, g1.mac, 0x0806, p.arp(op, g1.mac, g1.ip, tha, tpa) + p.marked(name))

    at_g2 = {
        # g1's own traffic, from each of its addresses: must arrive in both rounds
        "own-v4": v4("own-v4", g1.mac, g1.ip, g2.mac, g2.ip),
        "own-v4-second": v4("own-v4-second", g1.mac, f"10.{k}.0.51", g2.mac, g2.ip),
        "own-v6": v6("own-v6", f"fd00:{k}::11", g2_v6, g2.mac),
        "own-v6-link-local": v6("own-v6-link-local", ll1, p.link_local(g2.mac), g2.mac),
        **p.forgeries(g1, g2, k),  # what every antispoof must stop (the OVS test sends the same)
        "routing-header": p.ether(g2.mac, g1.mac, 0x86DD, p.ipv6(
            f"fd00:{k}::11", g2_v6, 43, p.routing_header(17, g2_v6) + p.udp(40000, 9999, p.marked("routing-header")))),
        # fragments and extension headers
        "forged-v6-fragment": p.ether(g2.mac, g1.mac, 0x86DD, p.ipv6(f"fd00:{k}::99", g2_v6, 44, p.fragment_header(
            17, offset=8) + p.marked("forged-v6-fragment"))),
        "forged-v6-src-behind-options": behind_options("forged-v6-src-behind-options", f"fd00:{k}::99", g2_v6,
                                                       g2.mac, 40000, 9999),
        "dhcp-reply-first-fragment": p.ether(p.BROADCAST, g1.mac, 0x0800, p.ipv4(
            g1.ip, "255.255.255.255", 17, p.udp(67, 68, p.marked("dhcp-reply-first-fragment")), more=True)),
        "dhcpv6-reply-behind-options": behind_options("dhcpv6-reply-behind-options", ll1, p.ALL_NODES,
                                                      p.ALL_NODES_MAC, 547, 546),
        "router-advert-behind-options": p.ether(p.ALL_NODES_MAC, g1.mac, 0x86DD, p.icmp6(
            ll1, p.ALL_NODES, p.router_advertisement(f"2001:db8:{k}::", g1.mac) + p.marked(
                "router-advert-behind-options"), before=p.options_header(58), first=0)),
        # redirects
        "icmp-redirect": p.ether(g2.mac, g1.mac, 0x0800, p.ipv4(g1.ip, g2.ip, 1, p.icmp4(
            5, 1, socket.inet_aton(g1.ip) + p.ipv4(g2.ip, host.router_ip, 17, p.udp(1, 2, b""))[:28]
            + p.marked("icmp-redirect")))),
        "icmpv6-redirect": p.ether(g2.mac, g1.mac, 0x86DD, p.icmp6(ll1, p.link_local(g2.mac), p.redirect6(
            ll1, f"2001:db8:{k}::1", p.marked("icmpv6-redirect")))),
        # ARP: a reply to a group address must be about g1's own address (a gratuitous reply)
        "arp-reply-to-group-about-g2": arp_marked("arp-reply-to-group-about-g2", 2, p.BROADCAST, p.BROADCAST,
                                                  g2.ip),
        "own-arp-gratuitous-reply": arp_marked("own-arp-gratuitous-reply", 2, p.BROADCAST, p.BROADCAST, g1.ip),
        "own-arp-request": arp_marked("own-arp-request", 1, p.BROADCAST, "00:00:00:00:00:00", g2.ip),
        "own-arp-reply-to-g2": arp_marked("own-arp-reply-to-g2", 2, g2.mac, g2.mac, g2.ip),
    }
    # duplicate address detection claiming g2's address: its nonce option is the marker (no room for another)
    nonces = {"dad-claims-g2": "XSPdad"}
    dad = p.ether(p.multicast_mac(p.solicited_node(g2_v6)), g1.mac, 0x86DD, p.icmp6(
        "::", p.solicited_node(g2_v6), p.neighbour_solicit(g2_v6, nonce=nonces["dad-claims-g2"].encode())))
    at_dom0 = {
        "forged-v4-src-to-dom0": v4("forged-v4-src-to-dom0", g1.mac, forged_ip, bridge_mac, host.dom0_ip,
                                    dport=PORT),
        "forged-v6-src-to-dom0": v6("forged-v6-src-to-dom0", f"fd00:{k}::99", f"fd00:{k}::2", bridge_mac,
                                    dport=PORT),
        "own-v4-to-dom0": v4("own-v4-to-dom0", g1.mac, g1.ip, bridge_mac, host.dom0_ip, dport=PORT),
    }
    own6, dom0_v6 = f"fd00:{k}::11", f"fd00:{k}::2"
    assert _reaches(host, host.dom0, own6)  # dom0 holds an entry for g1's address: an NA can override it
    neighbour = [
        # g1 claims g2's IPv6 address to dom0 (override), and g2's IPv4 address (ARP)
        p.ether(p.ALL_NODES_MAC, g1.mac, 0x86DD, p.icmp6(ll1, p.ALL_NODES, p.neighbour_advert(g2_v6, g1.mac))),
        # its own addresses, with another MAC in the link-layer option: an NA (target option), an NS (source)
        p.ether(p.ALL_NODES_MAC, g1.mac, 0x86DD, p.icmp6(own6, p.ALL_NODES, p.neighbour_advert(own6, p.FORGED_MAC))),
        p.ether(p.multicast_mac(p.solicited_node(dom0_v6)), g1.mac, 0x86DD, p.icmp6(
            ll1, p.solicited_node(dom0_v6), p.neighbour_solicit(dom0_v6, source_mac=p.FORGED_MAC))),
        p.ether(p.BROADCAST, g1.mac, 0x0806, p.arp(1, g1.mac, g2.ip, "00:00:00:00:00:00", host.dom0_ip)),
        # an ARP request whose sender MAC is not the frame's (and not g1's)
        p.ether(p.BROADCAST, g1.mac, 0x0806, p.arp(1, p.FORGED_MAC, f"10.{k}.0.51", "00:00:00:00:00:00",
                                                   host.dom0_ip)),
    ]
    markers = [f"XSP-{n}-XSP" for n in (*at_g2, *at_dom0)]
    watch_g2 = p.Watch(g2.ns, ["packet=eth0"], markers + list(nonces.values()))
    watch_dom0 = p.Watch(host.dom0, [f"udp={PORT}"], markers)
    p.send(g1.ns, "eth0", [*at_g2.values(), *at_dom0.values(), dad, *neighbour])
    got["na-override-claims-g2-v6"] = g1.mac in _neigh(host, g2_v6)
    got["na-own-address-forged-target-mac"] = p.FORGED_MAC in _neigh(host, own6)
    got["ns-forged-source-mac"] = p.FORGED_MAC in _neigh(host, ll1)
    got["arp-claims-g2-v4"] = g1.mac in _neigh(host, g2.ip)
    got["arp-forged-sender-mac"] = p.FORGED_MAC in _neigh(host, f"10.{k}.0.51")
    seen = {**watch_g2.seen(), **watch_dom0.seen()}
    for name in (*at_g2, *at_dom0):
        got[name] = f"XSP-{name}-XSP" in seen
    got.update({name: marker in seen for name, marker in nonces.items()})
    host.ip(host.dom0, "neigh", "flush", "all")
    return got


# ------------------------------------------------------------------ routed
@pytest.fixture
def routed(require_root, xenstored):
    """network-route started; g1 (two IPv4, one IPv6) and g2 routed through vif1.0, vif2.0."""
    host = SimHost(xenstored)
    try:
        add_ipv6_uplink(host)
        k = host.k
        g1 = host.add_guest(1, bridge=None, script="/etc/xen/scripts/vif-route",
                            ip=f"{host.guest_ip(1)} 10.{k}.0.51 {guest_ip6(host, 1)}")
        g2 = host.add_guest(2, bridge=None, script="/etc/xen/scripts/vif-route",
                            ip=f"{host.guest_ip(2)} {guest_ip6(host, 2)}")
        for g in (g1, g2):
            routed_guest_ipv6(host, g)
        host.ip(g1.ns, "addr", "add", f"10.{k}.0.51/32", "dev", "eth0")
        cp = run_network(host, "network-route", "start")
        assert cp.returncode == 0, cp.stderr
        yield host, g1, g2
        run_network(host, "network-route", "stop")
    finally:
        host.close()


def routed_round(host: SimHost, g1, g2) -> dict[str, bool]:
    """Every routed probe of g1: to g2 (through dom0), to dom0's stack, to the LAN."""
    k = host.k
    gw = _mac_of(host, host.dom0, g1.vif)  # g1's next hop: dom0's end of its vif
    forged, forged6 = f"10.{k}.0.99", f"fd00:{k}::99"
    own6, g2_v6 = guest_ip6(host, 1), guest_ip6(host, 2)
    assert _reaches(host, g1.ns, g2.ip) and _reaches(host, g1.ns, g2_v6)  # dom0 knows both guests' MACs
    # and the LAN router's (a one-way probe forwarded while dom0 still solicits it can be lost)
    assert _reaches(host, host.dom0, host.router_ip) and _reaches(host, host.dom0, router_ip6(host))

    def v4(name: str, src: str, dst: str, sport: int = 40000, dport: int = 9999, src_mac: str | None = None,
           dst_mac: str | None = None) -> bytes:
        return p.ether(dst_mac or gw, src_mac or g1.mac, 0x0800, p.ipv4(src, dst, 17, p.udp(sport, dport,
                                                                                            p.marked(name))))

    def v6(name: str, src: str, dst: str, sport: int = 40000, dport: int = 9999, dst_mac: str | None = None) -> bytes:
        return p.ether(dst_mac or gw, g1.mac, 0x86DD, p.udp6(src, dst, sport, dport, p.marked(name)))

    at_g2 = {
        "own-v4": v4("own-v4", g1.ip, g2.ip),
        "own-v4-second": v4("own-v4-second", f"10.{k}.0.51", g2.ip),
        "own-v6": v6("own-v6", own6, g2_v6),
        "forged-v4-src": v4("forged-v4-src", forged, g2.ip),
        "forged-v6-src": v6("forged-v6-src", forged6, g2_v6),
        "forged-mac": v4("forged-mac", g1.ip, g2.ip, src_mac=p.FORGED_MAC),
    }
    at_lan = {
        "own-v4-to-lan": v4("own-v4-to-lan", g1.ip, host.router_ip),
        "forged-v4-src-to-lan": v4("forged-v4-src-to-lan", forged, host.router_ip),
        "forged-v4-src-claiming-g2-to-lan": v4("forged-v4-src-claiming-g2-to-lan", g2.ip, host.router_ip),
        "forged-v6-src-to-lan": v6("forged-v6-src-to-lan", forged6, f"fd00:{k}::1"),
    }
    at_dom0 = {
        "forged-v4-src-to-dom0": v4("forged-v4-src-to-dom0", forged, host.dom0_ip, dport=PORT),
        "forged-v6-src-to-dom0": v6("forged-v6-src-to-dom0", forged6, dom0_ip6(host), dport=PORT),
        "own-v4-to-dom0": v4("own-v4-to-dom0", g1.ip, host.dom0_ip, dport=PORT),
        "dhcp-reply-1067-to-68": v4("dhcp-reply-1067-to-68", g1.ip, "255.255.255.255", 1067, 68,
                                    dst_mac=p.BROADCAST),
        "dhcpv6-reply-to-546": v6("dhcpv6-reply-to-546", p.link_local(g1.mac), p.ALL_NODES, 547, 546,
                                  dst_mac=p.ALL_NODES_MAC),
    }
    host.ip(host.dom0, "-4", "neigh", "flush", "dev", g1.vif)
    arp = [p.ether(p.BROADCAST, g1.mac, 0x0806, p.arp(1, g1.mac, host.router_ip, "00:00:00:00:00:00",
                                                     host.dom0_ip))]
    names = (*at_g2, *at_lan, *at_dom0)
    markers = [f"XSP-{n}-XSP" for n in names]
    watches = [p.Watch(g2.ns, ["packet=eth0"], markers), p.Watch(host.lan, ["packet=lan0"], markers),
               p.Watch(host.dom0, [f"udp={PORT}", "udp=68", "udp=546"], markers)]
    p.send(g1.ns, "eth0", [*at_g2.values(), *at_lan.values(), *at_dom0.values(), *arp])
    got = {"arp-claims-router-to-dom0": g1.mac in _neigh(host, host.router_ip)}
    seen: dict[str, list[str]] = {}
    for w in watches:
        seen.update(w.seen())
    got.update({name: f"XSP-{name}-XSP" in seen for name in names})
    host.ip(host.dom0, "-4", "neigh", "flush", "dev", g1.vif)
    return got


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["bridged", "routed"])
def test_probes_get_through_only_without_antispoof(request, kind, backend, order):
    host, g1, g2 = request.getfixturevalue(kind)
    script, probe_round = ("vif-bridge", bridged_round) if kind == "bridged" else ("vif-route", routed_round)
    control_then_guarded(host, script, backend, order, lambda: probe_round(host, g1, g2))


# ------------------------------------------------------------------ a guest that may serve DHCP
def dhcp_answers(host: SimHost, sender, receiver) -> dict[str, bool]:
    """DHCP and DHCPv6 server answers from *sender* (its own MAC and addresses), and one forged-source
    datagram; for each, whether it reached *receiver*'s NIC."""
    ll = p.link_local(sender.mac)
    frames = {
        "dhcp-67-to-68": p.ether(p.BROADCAST, sender.mac, 0x0800, p.ipv4(sender.ip, "255.255.255.255", 17, p.udp(
            67, 68, p.marked("dhcp-67-to-68")))),
        "dhcp-1067-to-68": p.ether(p.BROADCAST, sender.mac, 0x0800, p.ipv4(sender.ip, "255.255.255.255", 17, p.udp(
            1067, 68, p.marked("dhcp-1067-to-68")))),
        "dhcpv6-547-to-546": p.ether(p.ALL_NODES_MAC, sender.mac, 0x86DD, p.udp6(ll, p.ALL_NODES, 547, 546, p.marked(
            "dhcpv6-547-to-546"))),
        "forged-v4-src": p.ether(receiver.mac, sender.mac, 0x0800, p.ipv4(f"10.{host.k}.0.99", receiver.ip, 17, p.udp(
            40000, 9999, p.marked("forged-v4-src")))),
    }
    watch = p.Watch(receiver.ns, ["packet=eth0"], [f"XSP-{n}-XSP" for n in frames])
    p.send(sender.ns, "eth0", list(frames.values()))
    seen = watch.seen()
    return {name: f"XSP-{name}-XSP" in seen for name in frames}


@pytest.mark.parametrize("backend", BACKENDS)
def test_dhcp_server_yes_lets_only_that_guest_answer_dhcp_clients(bridged, backend):
    """``dhcp_server=yes`` in g1's backend directory: g1 may answer DHCP/DHCPv6 clients, g2 (without it) may not,
    and g1's other checks still hold. Control: without antispoof, g2's answers arrive too."""
    host, g1, g2 = bridged
    host.xs.write(f"{g1.backend}/dhcp_server", "yes")
    _plug(host, "vif-bridge", "g1-first", "online", f"firewall={backend}", "antispoof=no")
    assert all(dhcp_answers(host, g2, g1).values())  # the control: every frame of the round gets through
    _plug(host, "vif-bridge", "g1-first", "offline", f"firewall={backend}")
    _plug(host, "vif-bridge", "g1-first", "online", f"firewall={backend}", "antispoof=yes")
    served = dhcp_answers(host, g1, g2)
    assert served == {"dhcp-67-to-68": True, "dhcp-1067-to-68": True, "dhcpv6-547-to-546": True,
                      "forged-v4-src": False}, served
    assert not any(dhcp_answers(host, g2, g1).values())
    _plug(host, "vif-bridge", "g1-first", "offline", f"firewall={backend}")


# ------------------------------------------------------------------ drift: protection that vanished
def _forged_reaches_g2(host: SimHost, g1, g2) -> bool:
    """One forged-source UDP probe from g1, looked for on g2's NIC."""
    watch = p.Watch(g2.ns, ["packet=eth0"], ["XSP-forged-XSP"])
    p.send(g1.ns, "eth0", [p.ether(g2.mac, g1.mac, 0x0800, p.ipv4(f"10.{host.k}.0.99", g2.ip, 17, p.udp(
        40000, 9999, p.marked("forged"))))])
    return "XSP-forged-XSP" in watch.seen()


@pytest.mark.parametrize("loss", ["flush ruleset", "delete table bridge xenscripts", "flush table bridge xenscripts"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_check_names_guests_whose_protection_vanished_and_fix_restores_it(bridged, backend, loss, tmp_path):
    from tests.host.test_admin import xenscripts

    host, g1, g2 = bridged
    for g in (g1, g2):  # as an admin sets it per guest, so that --fix's re-run online sees it too
        host.xs.write(f"{g.backend}/firewall", backend)
        host.xs.write(f"{g.backend}/antispoof", "yes")
    # in-process even when the suite runs a hotplugd: its monitor would restore the tables before check looks
    _plug(host, "vif-bridge", "g1-first", "online", XENSCRIPTS_SOCKET=f"{host.workdir}/no-hotplugd.sock")
    assert not _forged_reaches_g2(host, g1, g2)
    clean = xenscripts(host, tmp_path, "check", "--json")
    assert "protection-missing" not in clean.stdout, clean.stdout
    host.sh(host.dom0, "nft", *loss.split())  # flush ruleset: what 'systemctl restart nftables' does
    assert _forged_reaches_g2(host, g1, g2)  # the attack works again: check must say so
    found = xenscripts(host, tmp_path, "check", "--json")
    named = {(d["subject"], d["kind"]) for d in json.loads(found.stdout)["drifts"] if d["fix"] == "online"}
    # every rule gone: rules-missing; only some (our nft tables, the legacy compat chains still there) the other
    kind = "rules-missing" if (backend, loss) == ("nft", "flush ruleset") else "protection-missing"
    assert {("vif1.0", kind), ("vif2.0", kind)} <= named, found.stdout
    fixed = xenscripts(host, tmp_path, "check", "--fix", "--json")
    assert not [d for d in json.loads(fixed.stdout)["drifts"] if d["subject"] in ("vif1.0", "vif2.0")], fixed.stdout
    assert not _forged_reaches_g2(host, g1, g2)


def _guarding(host: SimHost, *vifs: str) -> bool:
    """Our bridge table holds its rules and these vifs (read with nft, not our code)."""
    chain = host.sh(host.dom0, "nft", "list", "chain", "bridge", "xenscripts", "from_guest", check=False).stdout
    members = host.sh(host.dom0, "nft", "list", "set", "bridge", "xenscripts", "vifs", check=False).stdout
    return "ether type vmap" in chain and all(f'"{v}"' in members for v in vifs)


@pytest.mark.parametrize("loss", ["flush ruleset", "flush table bridge xenscripts"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_hotplugd_puts_back_tables_that_vanish_and_says_why(bridged, backend, loss, tmp_path):
    from pathlib import Path

    from xensim.hotplugd import HotplugDaemon

    host, g1, g2 = bridged
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")) as daemon:
        for d in (1, 2):
            cp = host.run_hotplug(our_command("vif-bridge"), d, extra_args=(f"firewall={backend}", "antispoof=yes"),
                                  extra_env={"XENSCRIPTS_SYSLOG": "", "XENSCRIPTS_SOCKET": daemon.socket})
            assert cp.returncode == 0, cp.stderr
        assert daemon.served() == 2 and not _forged_reaches_g2(host, g1, g2)
        host.sh(host.dom0, "nft", *loss.split())  # flush ruleset: what 'systemctl restart nftables' does
        assert _forged_reaches_g2(host, g1, g2) or _guarding(host, g1.vif, g2.vif)  # lost, unless back already
        assert wait_until(lambda: _guarding(host, g1.vif, g2.vif), timeout=10, interval=0.05)
        assert not _forged_reaches_g2(host, g1, g2)
        assert wait_until(lambda: "vif1.0 vif2.0 restored" in Path(daemon.log_path).read_text(), timeout=5)
        log = Path(daemon.log_path).read_text()
        said = [line for line in log.splitlines() if line.startswith("hotplugd: nft monitor: ")]
        why = "nft flush table" if loss.startswith("flush table") else "nft flush ruleset"
        what = "rules of table bridge xenscripts" if loss.startswith("flush table") else ", table bridge xenscripts"
        assert any(what in f", {line.split(': ', 2)[2]}" and why in line for line in said), log
        assert daemon.served() == 2  # no request did it
        for d in (1, 2):
            host.run_hotplug(our_command("vif-bridge"), d, command="offline",
                             extra_env={"XENSCRIPTS_SYSLOG": "", "XENSCRIPTS_SOCKET": daemon.socket})


# ------------------------------------------------------------------ routed compat: no more open than upstream
@pytest.mark.parametrize("backend", BACKENDS)
def test_routed_compat_lets_in_only_replies_to_the_guests_own_connections(routed, backend):
    """With the host's FORWARD policy DROP, a routed guest's compat rules pass its own connections and their
    replies, and nothing new from the LAN (upstream's physdev rules match no routed packet: its guests get
    the policy). Control: with policy ACCEPT the same one-way datagram from the LAN reaches the guest."""
    host, g1, _g2 = routed
    tool = "iptables-nft" if backend == "nft" else "iptables-legacy"
    lan_mac, uplink_mac = _mac_of(host, host.lan, "lan0"), _mac_of(host, host.dom0, "eth0")

    def from_lan() -> bool:
        """A new datagram from the LAN to g1 (one-way): seen on g1's NIC?"""
        watch = p.Watch(g1.ns, ["packet=eth0"], ["XSP-from-lan-XSP"])
        p.send(host.lan, "lan0", [p.ether(uplink_mac, lan_mac, 0x0800, p.ipv4(host.router_ip, g1.ip, 17, p.udp(
            40001, 9999, p.marked("from-lan"))))])
        return "XSP-from-lan-XSP" in watch.seen()

    _plug(host, "vif-route", "g1-first", "online", f"firewall={backend}")
    try:
        assert from_lan() and _reaches(host, g1.ns, host.router_ip)
        host.sh(host.dom0, tool, "-P", "FORWARD", "DROP")
        assert _reaches(host, g1.ns, host.router_ip)  # its own connection, and the replies
        assert not from_lan()
    finally:
        host.sh(host.dom0, tool, "-P", "FORWARD", "ACCEPT")
        _plug(host, "vif-route", "g1-first", "offline", f"firewall={backend}")
