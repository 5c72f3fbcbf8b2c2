"""vif-route and network-route on a simulated host whose uplink eth0 keeps dom0's address.

Observers: ``ip -j`` and ``sysctl`` inside the namespaces, xenstore, and
real pings from the guest to the LAN router (IPv4 and IPv6).
"""

from __future__ import annotations

import pytest

from xensim.host import SimHost
from xensim.ours import our_command
from xensim.routed import (
    add_ipv6_uplink,
    dom0_ip6,
    guest_ip6,
    proxy_neighbours,
    routed_guest_ipv6,
    router_ip6,
    run_network,
    state_dir,
    sysctl,
    udp_source_seen_by_lan,
)

VIF_ROUTE = our_command("vif-route")


@pytest.fixture
def routed(require_root, xenstored):
    """A SimHost with a plain uplink (IPv4 + IPv6), no bridge."""
    host = SimHost(xenstored)
    try:
        add_ipv6_uplink(host)
        yield host
    finally:
        host.close()


def _state(host: SimHost) -> dict:
    """What vif-route and network-route may change in dom0: addresses, routes, proxies, sysctls."""
    addrs = {a["ifname"]: sorted((i["local"], i["prefixlen"]) for i in a.get("addr_info", [])
                                 if i.get("scope") != "link")
             for a in host.addrs()}
    return {
        "addrs": addrs,
        "routes4": sorted(str(sorted(r.items())) for r in host.routes()),
        "routes6": sorted(str(sorted(r.items())) for r in _routes6(host) if r.get("protocol") != "kernel"),
        "proxies": proxy_neighbours(host),
        "up": {link["ifname"]: "UP" in link["flags"] for link in host.links()},
        "sysctls": {k: sysctl(host, k) for k in _sysctl_keys(host)},
    }


def _routes6(host: SimHost) -> list[dict]:
    import json

    return json.loads(host.ip(host.dom0, "-j", "-6", "route", "show").stdout or "[]")


def _sysctl_keys(host: SimHost) -> list[str]:
    keys = ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.proxy_arp", "net.ipv6.conf.all.forwarding",
            "net.ipv6.conf.eth0.proxy_ndp"]
    return keys + [f"net/ipv4/conf/{v.vif}/proxy_arp" for v in host.guests.values()]


def _add_routed_guest(host: SimHost, domid: int, ip6: bool = True):
    ips = host.guest_ip(domid) + (f" {guest_ip6(host, domid)}" if ip6 else "")
    guest = host.add_guest(domid, bridge=None, script="/etc/xen/scripts/vif-route", ip=ips)
    if ip6:
        routed_guest_ipv6(host, guest)
    return guest


def test_network_route_start_stop_restores_and_status(routed):
    host = routed
    before = _state(host)
    cp = run_network(host, "network-route", "start")
    assert cp.returncode == 0, cp.stderr
    started = _state(host)
    assert started["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert started["sysctls"]["net.ipv4.conf.eth0.proxy_arp"] == "1"
    assert started["sysctls"]["net.ipv6.conf.all.forwarding"] == "1"  # eth0 has a global IPv6 address
    assert started["sysctls"]["net.ipv6.conf.eth0.proxy_ndp"] == "1"
    assert run_network(host, "network-route", "start").returncode == 0
    assert _state(host) == started
    cp = run_network(host, "network-route", "status", "--json")
    assert cp.returncode == 0 and '"started": true' in cp.stdout, cp.stdout + cp.stderr
    assert "net.ipv4.ip_forward = 1" in run_network(host, "network-route", "status").stdout
    for _ in range(2):
        cp = run_network(host, "network-route", "stop")
        assert cp.returncode == 0, cp.stderr
        assert _state(host) == before
    assert '"started": false' in run_network(host, "network-route", "status", "--json").stdout


def test_network_route_ipv6_no_and_unknown_command(routed):
    host = routed
    before = _state(host)
    assert run_network(host, "network-route", "start", "ipv6=no").returncode == 0
    assert sysctl(host, "net.ipv6.conf.all.forwarding") == before["sysctls"]["net.ipv6.conf.all.forwarding"]
    assert run_network(host, "network-route", "stop").returncode == 0
    cp = run_network(host, "network-route", "frob")
    assert cp.returncode == 1
    assert cp.stderr == "Unknown command: frob\nValid commands are: start, stop, status\n"
    cp = run_network(host, "network-route", "start", "netdev=nosuch0")
    assert cp.returncode == 1 and "nosuch0" in cp.stderr
    cp = run_network(host, "network-route", "start", "--dry-run")
    assert cp.returncode == 0 and "would set net.ipv4.ip_forward = 1" in cp.stdout, cp.stdout + cp.stderr
    assert _state(host) == before


def test_routed_guest_reaches_lan_v4_and_v6_twice_online_then_offline(routed):
    host = routed
    guest = _add_routed_guest(host, 1)
    assert run_network(host, "network-route", "start").returncode == 0
    before = _state(host)
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
    assert cp.returncode == 0, cp.stderr
    assert host.xs.read(guest.backend + "/hotplug-status") == "connected"
    online = _state(host)
    assert (host.dom0_ip, 32) in online["addrs"]["vif1.0"]
    assert (dom0_ip6(host), 128) in online["addrs"]["vif1.0"]
    assert online["sysctls"]["net/ipv4/conf/vif1.0/proxy_arp"] == "1"
    route4 = [r for r in host.routes() if r.get("dev") == "vif1.0"]
    assert [(r["dst"], r["prefsrc"], r["metric"], r["scope"]) for r in route4] == \
        [(host.guest_ip(1), host.dom0_ip, 2, "link")]
    route6 = [r for r in _routes6(host) if r.get("dev") == "vif1.0" and r["dst"] == guest_ip6(host, 1)]
    assert [(r["metric"], r.get("prefsrc")) for r in route6] == [(2, dom0_ip6(host))]
    assert [(p["dst"], p["dev"]) for p in online["proxies"]] == [(guest_ip6(host, 1), "eth0")]
    assert host.ping(guest.ns, host.router_ip, timeout=5)
    assert host.ping(guest.ns, router_ip6(host), timeout=5)
    assert host.ping(host.lan, host.guest_ip(1), timeout=5)
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
    assert cp.returncode == 0, cp.stderr
    assert _state(host) == online
    for _ in range(2):
        cp = host.run_hotplug(VIF_ROUTE, 1, command="offline")
        assert cp.returncode == 0, cp.stderr
        after = _state(host)
        assert after["proxies"] == [] and not [r for r in host.routes() if r.get("dev") == "vif1.0"]
        assert after["addrs"]["vif1.0"] == [] and after["up"]["vif1.0"] is False
        assert {k: v for k, v in after.items() if k not in ("up", "sysctls")} == \
            {k: v for k, v in before.items() if k not in ("up", "sysctls")}
    assert run_network(host, "network-route", "stop").returncode == 0


def test_offline_removes_only_its_own_routes(routed):
    host = routed
    _add_routed_guest(host, 1, ip6=False)
    _add_routed_guest(host, 2, ip6=False)
    for domid in (1, 2):
        assert host.run_hotplug(VIF_ROUTE, domid, command="online").returncode == 0
    assert host.run_hotplug(VIF_ROUTE, 1, command="offline").returncode == 0
    dsts = sorted((r["dst"], r["dev"]) for r in host.routes() if r.get("dev", "").startswith("vif"))
    assert dsts == [(host.guest_ip(2), "vif2.0")]


def test_tap_gets_metric_1(routed):
    host = routed
    host.add_guest(3, bridge=None, script="/etc/xen/scripts/vif-route", ip=host.guest_ip(3), nic_type="ioemu")
    cp = host.run_hotplug(VIF_ROUTE, 3, command="add", type_if="tap")
    assert cp.returncode == 0, cp.stderr
    assert [(r["dst"], r["metric"]) for r in host.routes() if r.get("dev") == "vif3.0-emu"] == \
        [(host.guest_ip(3), 1)]
    assert host.xs.read("/local/domain/0/backend/vif/3/0/hotplug-status") == ""
    assert host.run_hotplug(VIF_ROUTE, 3, command="remove", type_if="tap").returncode == 0
    assert not [r for r in host.routes() if r.get("dev") == "vif3.0-emu"]


def test_netdev_without_address_changes_nothing(routed):
    host = routed
    guest = _add_routed_guest(host, 1, ip6=False)
    host.ip(host.dom0, "link", "add", "dummy7", "type", "bridge")
    before = _state(host)
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online", extra_env={"netdev": "dummy7"})
    assert cp.returncode == 1
    message = ("dummy7 is not up.  Bring it up or specify another interface with  netdev=<if> "
               f"as a parameter to {VIF_ROUTE[0]}.")
    error = host.xs.read(guest.backend + "/hotplug-error")
    assert error.startswith(message) and "it has no IPv4 address" in error  # upstream's text, then why
    assert message in cp.stderr
    assert _state(host) == before


def test_bad_guest_ip_changes_nothing(routed):
    host = routed
    guest = host.add_guest(1, bridge=None, script="/etc/xen/scripts/vif-route", ip="10.1.2.3 nonsense")
    before = _state(host)
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
    assert cp.returncode == 1
    assert "Invalid IP address 'nonsense'" in host.xs.read(guest.backend + "/hotplug-error")
    cp = host.run_hotplug(VIF_ROUTE, 1, command="frob")
    assert cp.returncode == 1
    assert host.xs.read(guest.backend + "/hotplug-error").startswith("Invalid command: frob (expected one of")
    assert _state(host) == before


def test_state_dir_is_per_host(routed):
    assert state_dir(routed).startswith(routed.workdir)


def test_vifname_gets_the_routes(routed):
    host = routed
    guest = host.add_guest(1, bridge=None, script="/etc/xen/scripts/vif-route", ip=host.guest_ip(1), vifname="web1")
    for _ in range(2):
        cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
        assert cp.returncode == 0, cp.stderr
        assert [(r["dst"], r["dev"]) for r in host.routes() if r.get("dev", "").startswith(("vif", "web"))] == \
            [(host.guest_ip(1), "web1")]
    assert host.xs.read(guest.backend + "/hotplug-status") == "connected"
    assert host.run_hotplug(VIF_ROUTE, 1, command="offline").returncode == 0
    assert not [r for r in host.routes() if r.get("dev") == "web1"]


def test_antispoof_drops_a_forged_source_on_the_routed_vif(routed):
    host = routed
    guest = _add_routed_guest(host, 1, ip6=False)
    forged = f"10.{host.k}.0.99"
    host.ip(guest.ns, "addr", "add", f"{forged}/32", "dev", guest.guest_if)
    assert run_network(host, "network-route", "start").returncode == 0
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
    assert cp.returncode == 0, cp.stderr
    assert udp_source_seen_by_lan(host, guest.ns, source=forged, timeout=5) == forged  # control: no antispoof
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online", extra_env={"antispoof": "yes"})
    assert cp.returncode == 0, cp.stderr
    assert udp_source_seen_by_lan(host, guest.ns, source=forged, timeout=2) is None
    assert udp_source_seen_by_lan(host, guest.ns, source=host.guest_ip(1), timeout=5) == host.guest_ip(1)
    assert host.run_hotplug(VIF_ROUTE, 1, command="offline", extra_env={"antispoof": "yes"}).returncode == 0
    assert run_network(host, "network-route", "stop").returncode == 0


def test_ipv6_guest_without_proxy_ndp_is_warned_about(routed):
    host = routed
    _add_routed_guest(host, 1)
    cp = host.run_hotplug(VIF_ROUTE, 1, command="online")
    assert cp.returncode == 0, cp.stderr
    with open(host.log_file, encoding="utf-8") as f:
        assert f"proxy_ndp is off on eth0: the LAN cannot reach {guest_ip6(host, 1)}" in f.read()
    assert host.run_hotplug(VIF_ROUTE, 1, command="offline").returncode == 0
