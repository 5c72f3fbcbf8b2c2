"""Differential tests: Debian's ``vif-route`` and ``vif-nat`` beside ours, on identical inputs.

Same harness as ``test_differential.py`` (fresh SimHost and xenstored per
implementation, compared step by step), on a plain uplink (no bridge), with
the dom0 routes and the vif's proxy_arp added to what is compared. Accepted
differences are spelled out where they occur, with their row in
docs/differences.md ("vif-route and vif-nat").
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.host.test_differential import Outcome, Step, World, assert_same
from xensim.host import SimHost
from xensim.ours import our_command, upstream_command
from xensim.xenstored import XenstoreServer

K = 77  # one subnet for both implementations, so addresses compare equal


class RoutedWorld(World):
    """A World whose steps also record dom0's routes and the vifs' proxy_arp."""

    def __init__(self, impl: str, script: str, host: SimHost, xs: XenstoreServer) -> None:
        super().__init__("upstream", host, xs)
        self.impl = impl
        self.outcome = Outcome(impl)
        self.argv0 = upstream_command(script) if impl == "upstream" else our_command(script)

    def run(self, label: str, domid: int, command: str = "online", devid: int = 0,
            type_if: str = "vif", **kw) -> Step:
        step = super().run(label, domid, command, devid, type_if, **kw)
        step.stderr = step.stderr.replace(self.argv0[0], "SCRIPT")
        step.writes = [(p, v.replace(self.argv0[0], "SCRIPT")) for p, v in step.writes]
        step.state["addrs"] = {k: [a for a in v if not a.startswith("fe80:")] for k, v in step.state["addrs"].items()}
        routes = json.loads(self.host.ip(self.host.dom0, "-j", "route", "show").stdout or "[]")
        step.state["routes"] = sorted((r["dst"], r.get("dev"), r.get("metric"), r.get("prefsrc"), r.get("scope"))
                                      for r in routes if r["dst"] != "default")
        step.state["proxy_arp"] = {
            link["ifname"]: self.host.sh(self.host.dom0, "cat",
                                         f"/proc/sys/net/ipv4/conf/{link['ifname']}/proxy_arp").stdout.strip()
            for link in self.host.links() if link["ifname"].startswith("vif")}
        return step


@contextmanager
def routed_world(impl: str, script: str) -> Iterator[RoutedWorld]:
    tmp = tempfile.mkdtemp(prefix="xs-diff-")
    xs = XenstoreServer(f"{tmp}/xs.sock").start()
    try:
        with SimHost(xs, subnet_index=K) as host:
            yield RoutedWorld(impl, script, host, xs)
    finally:
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_both(script: str, scenario: Callable[[RoutedWorld], None]) -> tuple[Outcome, Outcome]:
    results = []
    for impl in ("upstream", "ours"):
        with routed_world(impl, script) as w:
            scenario(w)
            results.append(w.outcome)
    return results[0], results[1]


def routed_guest(w: RoutedWorld, domid: int, ip: str | None = None) -> None:
    w.host.add_guest(domid, bridge=None, script="/etc/xen/scripts/vif-route",
                     ip=w.host.guest_ip(domid) if ip is None else ip)


# ------------------------------------------------------------------ vif-route
def test_route_online():
    def scenario(w: RoutedWorld) -> None:
        routed_guest(w, 1)
        w.run("online", 1)

    up, ours = run_both("vif-route", scenario)
    step = up.step("online")
    assert step.rc == 0, step.stderr
    assert ("10.77.0.11", "vif1.0", 2, "10.77.0.2", "link") in step.state["routes"]
    assert step.state["addrs"]["vif1.0"] == ["10.77.0.2"]
    assert step.state["proxy_arp"]["vif1.0"] == "1"
    assert_same(up, ours)


def _without(state: dict, *names: str) -> dict:
    return {k: v for k, v in state.items() if k not in names}


def test_route_online_twice_then_offline():
    def scenario(w: RoutedWorld) -> None:
        routed_guest(w, 1)
        routed_guest(w, 2)
        w.run("online 1", 1)
        w.run("online 2", 2)
        w.run("online 1 again", 1)
        w.run("offline 1", 1, "offline")

    up, ours = run_both("vif-route", scenario)
    for label in ("online 1", "online 2"):
        assert _comparable(up.step(label)) == _comparable(ours.step(label))
    # docs/differences.md vif-route "Second online": upstream's `ip route add` finds its own route.
    a, b = up.step("online 1 again"), ours.step("online 1 again")
    assert (a.rc, dict(a.writes)) == (1, {"backend/1.0/hotplug-error": "SCRIPT failed; error detected.",
                                          "backend/1.0/hotplug-status": "error"})
    assert (b.rc, b.writes) == (0, [("backend/1.0/hotplug-status", "connected")])
    assert a.state == b.state
    # docs/differences.md vif-route "Offline": both remove the guest's route and keep
    # guest 2's; upstream leaves the vif up with dom0's address, ours takes both away.
    a, b = up.step("offline 1"), ours.step("offline 1")
    assert (a.rc, a.writes) == (b.rc, b.writes) == (0, [])
    assert a.state["routes"] == b.state["routes"]
    assert ("10.77.0.11", "vif1.0", 2, "10.77.0.2", "link") not in b.state["routes"]
    assert (a.state["addrs"]["vif1.0"], a.state["links"]["vif1.0"]["up"]) == (["10.77.0.2"], True)
    assert (b.state["addrs"]["vif1.0"], b.state["links"]["vif1.0"]["up"]) == ([], False)


def _comparable(step: Step) -> dict:
    return {"rc": step.rc, "writes": step.writes, "state": step.state}


def test_route_netdev_without_address_and_ipv6_guest():
    def scenario(w: RoutedWorld) -> None:
        w.host.ip(w.host.dom0, "link", "add", "nad0", "type", "bridge")
        routed_guest(w, 1)
        routed_guest(w, 2, ip="10.77.0.12 fd00:77::12")
        w.run("no address", 1, extra_env={"netdev": "nad0"})
        w.run("ipv6", 2)

    up, ours = run_both("vif-route", scenario)
    message = "nad0 is not up.  Bring it up or specify another interface with  netdev=<if> as a parameter to SCRIPT."
    a, b = up.step("no address"), ours.step("no address")
    # docs/differences.md vif-route "netdev without an address": same message, but upstream's
    # ERR trap then overwrites it with "failed; error detected." (fatal inside $(...)).
    assert a.writes == [("backend/1.0/hotplug-error", message), ("backend/1.0/hotplug-status", "error"),
                        ("backend/1.0/hotplug-error", "SCRIPT failed; error detected."),
                        ("backend/1.0/hotplug-status", "error")]
    assert b.upstream_writes() == a.writes[:2] and a.rc == b.rc == 1
    assert "it has no IPv4 address; in an xl vif spec the key is gatewaydev=<if>" in b.hint()
    assert a.state == b.state
    # docs/differences.md vif-route "IPv6 guest address": upstream dies on `ip route add <v6> src <v4>`
    # after configuring the IPv4 part (no rollback); ours routes both (no IPv6 on this uplink: no src).
    a, b = up.step("ipv6"), ours.step("ipv6")
    assert (a.rc, dict(a.writes)["backend/2.0/hotplug-error"]) == (1, "SCRIPT failed; error detected.")
    assert (b.rc, b.writes) == (0, [("backend/2.0/hotplug-status", "connected")])
    assert _without(a.state, "routes") == _without(b.state, "routes")


# ------------------------------------------------------------------ vif-nat
def nat_guest(w: RoutedWorld, domid: int, devid: int = 0, ip: str | None = None) -> None:
    w.host.add_guest(domid, devid, bridge=None, script="/etc/xen/scripts/vif-nat", ip=ip, guest_addr="")


def test_nat_online_twice_then_offline():
    def scenario(w: RoutedWorld) -> None:
        nat_guest(w, 1)
        w.run("online", 1)
        w.xs.write("/local/domain/0/backend/vif/1/0/hotplug-status", "")
        w.run("online again", 1)
        w.run("offline", 1, "offline")

    up, ours = run_both("vif-nat", scenario)
    a, b = up.step("online"), ours.step("online")
    assert a.rc == 0, a.stderr
    assert ("10.0.1.1", "vif1.0", None, "10.0.1.128", "link") in a.state["routes"]
    assert a.state["addrs"]["vif1.0"] == ["10.0.1.128"] and a.state["proxy_arp"]["vif1.0"] == "1"
    assert _comparable(a) == _comparable(b)
    # docs/differences.md vif-nat "Second online": upstream sees its own route and exits 0
    # without writing hotplug-status (netback would never connect); ours writes connected.
    a, b = up.step("online again"), ours.step("online again")
    assert (a.rc, a.writes) == (0, [])
    assert (b.rc, b.writes) == (0, [("backend/1.0/hotplug-status", "connected")])
    assert a.state == b.state
    # docs/differences.md vif-nat "Offline": both take the vif down (the kernel drops the route);
    # upstream leaves the router address on it, ours removes it.
    a, b = up.step("offline"), ours.step("offline")
    assert (a.rc, a.writes) == (b.rc, b.writes) == (0, [])
    assert a.state["addrs"]["vif1.0"] == ["10.0.1.128"] and b.state["addrs"]["vif1.0"] == []
    assert _without(a.state, "addrs") == _without(b.state, "addrs")


def test_nat_vif1_1_after_vif1_10():
    def scenario(w: RoutedWorld) -> None:
        nat_guest(w, 1, 10)
        nat_guest(w, 1, 1)
        w.run("online 1.10", 1, devid=10)
        w.run("online 1.1", 1, devid=1)

    up, ours = run_both("vif-nat", scenario)
    assert _comparable(up.step("online 1.10")) == _comparable(ours.step("online 1.10"))
    # docs/differences.md vif-nat "vif1.1 and vif1.10" (spec §9.11): upstream's
    # `ip route | grep "dev vif1.1"` matches vif1.10, so vif1.1 is left unconfigured.
    a, b = up.step("online 1.1"), ours.step("online 1.1")
    assert (a.rc, a.writes) == (0, [])
    assert a.state["addrs"]["vif1.1"] == [] and not a.state["links"]["vif1.1"]["up"]
    assert (b.rc, b.writes) == (0, [("backend/1.1/hotplug-status", "connected")])
    assert b.state["addrs"]["vif1.1"] == ["10.0.1.129"]
    assert ("10.0.1.2", "vif1.1", None, "10.0.1.129", "link") in b.state["routes"]


def test_nat_router_octet_above_127():
    def scenario(w: RoutedWorld) -> None:
        nat_guest(w, 2, ip="192.168.7.200")
        w.run("online", 2)

    up, ours = run_both("vif-nat", scenario)
    a, b = up.step("online"), ours.step("online")
    # docs/differences.md vif-nat "Router address" (spec §9.11): upstream's +127 gives .327.
    assert a.rc == 1 and dict(a.writes)["backend/2.0/hotplug-error"] == \
        "ip addr add 192.168.7.327 dev vif2.0 failed"
    assert a.state["links"]["vif2.0"]["up"]  # no rollback upstream
    assert (b.rc, b.writes) == (0, [("backend/2.0/hotplug-status", "connected")])
    assert b.state["addrs"]["vif2.0"] == ["192.168.7.73"]


def test_tap_of_an_ioemu_guest():
    def route(w: RoutedWorld) -> None:
        w.host.add_guest(3, bridge=None, script="/etc/xen/scripts/vif-route", ip=w.host.guest_ip(3), nic_type="ioemu")
        w.run("add tap", 3, "add", type_if="tap")
        w.run("remove tap", 3, "remove", type_if="tap")

    up, ours = run_both("vif-route", route)
    a, b = up.step("add tap"), ours.step("add tap")
    assert (a.rc, a.writes) == (0, [])  # no hotplug-status for the emulated NIC
    assert ("10.77.0.13", "vif3.0-emu", 1, "10.77.0.2", "link") in a.state["routes"]  # metric 1: the tap wins
    assert _comparable(a) == _comparable(b)
    a, b = up.step("remove tap"), ours.step("remove tap")
    assert a.state["routes"] == b.state["routes"]  # R2: upstream keeps the tap up with its address
    assert _without(a.state, "addrs", "links") == _without(b.state, "addrs", "links")

    def nat(w: RoutedWorld) -> None:
        w.host.add_guest(3, bridge=None, script="/etc/xen/scripts/vif-nat", nic_type="ioemu", guest_addr="")
        w.run("add tap", 3, "add", type_if="tap")
        w.run("remove tap", 3, "remove", type_if="tap")

    up, ours = run_both("vif-nat", nat)
    assert up.step("add tap").state["addrs"]["vif3.0-emu"] == []  # upstream configures nothing for it
    assert_same(up, ours)
