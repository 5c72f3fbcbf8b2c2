"""Differential tests: Debian's upstream ``vif-bridge`` and ours on identical inputs.

Each scenario runs twice, once per implementation, each time on a fresh
SimHost with its own fresh xenstored, and the two runs are compared step by
step on what an admin (and libxl/netback) can see:

* exit status;
* xenstore writes made by the script (paths normalised to ``backend/D.N/…``
  and ``frontend/D.N/…`` so they do not depend on the host);
* dom0 links: names, masters, MTUs, the UP flag, operstate, the MAC of every
  non-bridge link but the (random) uplink, the vif's addresses;
* bridge ports as ``bridge -j link`` reports them.

Every difference we accept is spelled out in the test that meets it, with a
pointer to docs/differences.md; anything else fails the comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from xensim.host import SimHost
from xensim.ours import our_command, upstream_command
from xensim.xenstored import XenstoreServer

IMPLS = {"upstream": upstream_command("vif-bridge"), "ours": our_command("vif-bridge")}
DIFFS = "docs/differences.md"


# ------------------------------------------------------------------ harness
@dataclass
class Step:
    """What one hotplug invocation did."""

    label: str
    rc: int
    stderr: str
    writes: list[tuple[str, str]]
    state: dict

    def upstream_writes(self) -> list[tuple[str, str]]:
        """The writes with our hint cut off each hotplug-error: upstream's text comes first, then
        ``(what exists, what to do)`` (docs/differences.md "Error messages say what to do")."""
        return [(k, HINT.sub("", v) if k.endswith("/hotplug-error") else v) for k, v in self.writes]

    def hint(self) -> str:
        """Our hint on the step's hotplug-error ('' when it has none)."""
        error = dict(self.writes).get(next((k for k, _ in self.writes if k.endswith("/hotplug-error")), ""), "")
        match = HINT.search(error)
        return match.group(0) if match else ""


HINT = re.compile(r" \([^()]*\)$")

@dataclass
class Outcome:
    impl: str
    steps: list[Step] = field(default_factory=list)

    def step(self, label: str) -> Step:
        return next(s for s in self.steps if s.label == label)


_BE = re.compile(r"^(?:/local/domain/0/)?backend/vif/(\d+)/(\d+)(/.*)?$")
_FE = re.compile(r"^/local/domain/(\d+)/device/vif/(\d+)(/.*)?$")


def norm_path(path: str) -> str:
    """``/local/domain/0/backend/vif/3/0/x`` -> ``backend/3.0/x``; frontends alike."""
    m = _BE.match(path)
    if m:
        return f"backend/{m.group(1)}.{m.group(2)}{m.group(3) or ''}"
    m = _FE.match(path)
    if m:
        return f"frontend/{m.group(1)}.{m.group(2)}{m.group(3) or ''}"
    return path


def snapshot(host: SimHost, baseline_macs: dict[str, str] | None = None) -> dict:
    """Links and bridge ports of dom0, without what changes by itself.

    A MAC still equal to the one the link had before the first hotplug run
    (veth MACs are random) is recorded as ``"unchanged"``.
    """
    links = {}
    vif_addrs = {}
    for link in host.links():
        name = link["ifname"]
        if name == "lo":
            continue
        kind = (link.get("linkinfo") or {}).get("info_kind")
        entry = {
            "kind": kind,
            "master": link.get("master"),
            "mtu": link["mtu"],
            "up": "UP" in link["flags"],
            "operstate": link.get("operstate"),
            "altnames": sorted(link.get("altnames", [])),
        }
        # A bridge's MAC follows its ports and eth0's is random per host.
        if kind != "bridge" and name != "eth0":
            mac = link["address"]
            entry["address"] = "unchanged" if (baseline_macs or {}).get(name) == mac else mac
        links[name] = entry
    for a in host.addrs():
        if a["ifname"] not in ("lo", "eth0") and a["ifname"] not in host.bridges:
            vif_addrs[a["ifname"]] = sorted(i["local"] for i in a.get("addr_info", []))
    ports = sorted(
        (p["ifname"], p.get("master"), p.get("state"), p.get("mtu"), "UP" in p.get("flags", []))
        for p in host.bridge_ports()
    )
    return {"links": links, "ports": ports, "addrs": vif_addrs}


def _operstate_settled(link: dict) -> bool:
    """Linkwatch updates operstate up to ~1 s late: wait until it matches the flags."""
    flags = link.get("flags", [])
    running = "UP" in flags and "LOWER_UP" in flags
    return link.get("operstate") == "UNKNOWN" or (link.get("operstate") == "UP") == running


def settled_snapshot(host: SimHost, baseline_macs: dict[str, str], timeout: float = 3.0) -> dict:
    """A snapshot once every operstate agrees with its link's flags."""
    deadline = time.monotonic() + timeout
    while not all(_operstate_settled(link) for link in host.links()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return snapshot(host, baseline_macs)


class World:
    """One implementation's host: run hotplug steps and record them."""

    def __init__(self, impl: str, host: SimHost, xs: XenstoreServer) -> None:
        self.impl = impl
        self.argv0 = IMPLS[impl]
        self.host = host
        self.xs = xs
        self.outcome = Outcome(impl)
        self.baseline_macs: dict[str, str] | None = None

    def run(self, label: str, domid: int, command: str = "online", devid: int = 0,
            type_if: str = "vif", **kw) -> Step:
        if self.baseline_macs is None:
            settled_snapshot(self.host, {})
            self.baseline_macs = {link["ifname"]: link["address"] for link in self.host.links()}
        start = len(self.xs.writes)
        cp = self.host.run_hotplug(self.argv0, domid, devid, command=command, type_if=type_if, **kw)
        writes = [(norm_path(p), v) for p, v in self.xs.writes[start:]]
        step = Step(label, cp.returncode, cp.stderr, writes, settled_snapshot(self.host, self.baseline_macs))
        self.outcome.steps.append(step)
        return step


@contextmanager
def world(impl: str) -> Iterator[World]:
    tmp = tempfile.mkdtemp(prefix="xs-diff-")
    xs = XenstoreServer(f"{tmp}/xs.sock").start()
    try:
        with SimHost(xs) as host:
            yield World(impl, host, xs)
    finally:
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


Scenario = Callable[[World], None]


def run_both(scenario: Scenario) -> tuple[Outcome, Outcome]:
    """Run *scenario* on a fresh host for upstream, then for ours."""
    results = []
    for impl in ("upstream", "ours"):
        with world(impl) as w:
            scenario(w)
            results.append(w.outcome)
    return results[0], results[1]


def comparable(step: Step) -> dict:
    return {"rc": step.rc, "writes": step.upstream_writes(), "state": step.state}


def differences(a, b, where: str = "") -> list[str]:
    """Readable list of the leaves where *a* (upstream) and *b* (ours) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: upstream={a.get(k, '<absent>')!r} ours={b.get(k, '<absent>')!r}")
            else:
                out += differences(a[k], b[k], f"{where}/{k}")
        return out
    return [] if a == b else [f"{where}: upstream={a!r} ours={b!r}"]


def assert_same(up: Outcome, ours: Outcome) -> None:
    assert [s.label for s in up.steps] == [s.label for s in ours.steps]
    for a, b in zip(up.steps, ours.steps, strict=True):
        diff = differences(comparable(a), comparable(b))
        assert not diff, (f"step {a.label!r} differs:\n  " + "\n  ".join(diff)
                          + f"\nupstream stderr: {a.stderr}\nours stderr: {b.stderr}")


def drop_altname(step: Step, name: str, altname: str) -> None:
    """Difference (b): ours keeps the original name of a renamed vif as an altname."""
    link = step.state["links"].get(name)
    assert link is not None, f"{name} missing after {step.label}"
    assert link["altnames"] == [altname], link
    link["altnames"] = []


# ------------------------------------------------------------------ identical behaviour
def test_online_plain_guest():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.run("online", 1)

    up, ours = run_both(scenario)
    step = up.step("online")
    assert step.rc == 0, step.stderr
    assert step.writes == [("frontend/1.0/mtu", "1500"), ("backend/1.0/hotplug-status", "connected")]
    vif = step.state["links"]["vif1.0"]
    assert (vif["master"], vif["up"], vif["address"]) == ("xenbr0", True, "fe:ff:ff:ff:ff:ff")
    assert_same(up, ours)


def test_online_backend_mtu_9000():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, mtu=9000)
        w.run("online", 1)

    up, ours = run_both(scenario)
    step = up.step("online")
    assert step.rc == 0, step.stderr
    assert ("frontend/1.0/mtu", "9000") in step.writes
    assert step.state["links"]["vif1.0"]["mtu"] == 9000
    assert_same(up, ours)


def test_online_without_mtu_key_uses_bridge_mtu():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0", mtu=1450)
        w.host.add_guest(1)
        assert w.xs.read("/local/domain/0/backend/vif/1/0/mtu") is None
        w.run("online", 1)

    up, ours = run_both(scenario)
    step = up.step("online")
    assert step.rc == 0, step.stderr
    assert ("frontend/1.0/mtu", "1450") in step.writes
    assert step.state["links"]["vif1.0"]["mtu"] == 1450
    assert_same(up, ours)


def test_online_then_offline():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.host.add_guest(2)
        w.run("online 1", 1)
        w.run("online 2", 2)
        w.run("offline 1", 1, "offline")
        w.run("offline 2", 2, "offline")

    up, ours = run_both(scenario)
    assert [s.rc for s in up.steps] == [0, 0, 0, 0]
    last = up.step("offline 2")
    assert last.writes == []
    assert [p[0] for p in last.state["ports"]] == ["eth0"]
    assert last.state["links"]["vif1.0"]["up"] is False
    assert_same(up, ours)


def test_tap_add_remove_for_ioemu_guest():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(3, nic_type="ioemu")
        w.run("online vif", 3)
        w.run("add tap", 3, "add", type_if="tap")
        w.run("remove tap", 3, "remove", type_if="tap")
        w.run("offline vif", 3, "offline")

    up, ours = run_both(scenario)
    assert [s.rc for s in up.steps] == [0, 0, 0, 0]
    add = up.step("add tap")
    assert add.writes == []  # no hotplug-status and no frontend mtu for the tap
    assert add.state["links"]["vif3.0-emu"]["master"] == "xenbr0"
    assert up.step("remove tap").state["links"]["vif3.0-emu"]["master"] is None
    assert_same(up, ours)


def test_missing_bridge_device():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, bridge="xenbr9")
        w.run("online", 1)

    up, ours = run_both(scenario)
    for outcome in (up, ours):
        step = outcome.step("online")
        assert step.rc == 1, (outcome.impl, step.stderr)
        assert dict(step.upstream_writes()) == {
            "backend/1.0/hotplug-error": "Could not find bridge device xenbr9",
            "backend/1.0/hotplug-status": "error",
        }, outcome.impl
    assert "bridges in dom0: xenbr0;" in ours.step("online").hint()  # what exists instead
    assert up.step("online").hint() == ""
    assert_same(up, ours)


def test_offline_with_vanished_bridge():
    """Upstream fatals on a missing bridge even on offline; ours releases and exits 0."""

    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.run("online", 1)
        w.host.ip(w.host.dom0, "link", "del", "xenbr0")
        w.run("offline", 1, "offline")

    up, ours = run_both(scenario)
    a, b = up.step("offline"), ours.step("offline")
    # docs/differences.md "Offline of a vanished vif or bridge".
    assert (a.rc, dict(a.writes)) == (1, {"backend/1.0/hotplug-error": "Could not find bridge device xenbr0",
                                          "backend/1.0/hotplug-status": "error"})
    assert (b.rc, b.writes) == (0, [])
    # Upstream stops before taking the vif down; ours takes it down.
    assert a.state["links"]["vif1.0"]["up"] is True
    assert b.state["links"]["vif1.0"]["up"] is False
    assert b.state["links"]["vif1.0"]["master"] is None


def test_offline_with_vanished_vif():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.run("online", 1)
        w.host.remove_guest_link(1)
        w.run("offline", 1, "offline")

    up, ours = run_both(scenario)
    for outcome in (up, ours):
        step = outcome.step("offline")
        assert (step.rc, step.writes) == (0, []), (outcome.impl, step.stderr)
    assert_same(up, ours)


# ------------------------------------------------------------------ vifname
def test_vifname_rename():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, vifname="web1")
        w.run("online", 1)
        w.run("offline", 1, "offline")

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    assert a.rc == b.rc == 0, (a.stderr, b.stderr)
    # (a) docs/differences.md "vifname and the frontend mtu" (upstream bug, spec §9.13):
    # upstream derives domid/devid from the renamed device and writes a junk node.
    assert a.writes == [("/local/domain/web1/device/vif/web1/mtu", "1500"),
                        ("backend/1.0/hotplug-status", "connected")]
    assert b.writes == [("frontend/1.0/mtu", "1500"), ("backend/1.0/hotplug-status", "connected")]
    # (b) docs/differences.md "Altname on a renamed vif".
    for step in ours.steps:
        drop_altname(step, "web1", "vif1.0")
    assert "vif1.0" not in a.state["links"]
    assert a.state == b.state
    assert comparable(up.step("offline")) == comparable(ours.step("offline"))


def test_vifname_second_online_is_idempotent_in_ours():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, vifname="web1")
        w.run("online", 1)
        w.run("online again", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online again"), ours.step("online again")
    # docs/differences.md "Second online with vifname": upstream finds its own
    # renamed vif under the target name and fails.
    assert a.rc == 1
    assert dict(a.writes) == {
        "backend/1.0/hotplug-error":
            "Cannot rename interface vif1.0. An interface with name web1 already exists.",
        "backend/1.0/hotplug-status": "error",
    }
    assert b.rc == 0, b.stderr
    assert b.writes == [("frontend/1.0/mtu", "1500"), ("backend/1.0/hotplug-status", "connected")]
    drop_altname(b, "web1", "vif1.0")
    # The port itself is the same either way.
    assert a.state == b.state


def test_vifname_target_exists():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(2)
        w.host.add_guest(1, vifname="vif2.0")
        w.run("online", 1)

    up, ours = run_both(scenario)
    step = up.step("online")
    assert step.rc == 1
    assert dict(step.writes)["backend/1.0/hotplug-error"] == \
        "Cannot rename interface vif1.0. An interface with name vif2.0 already exists."
    assert_same(up, ours)


def test_tap_with_vifname():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(3, nic_type="ioemu", vifname="web3")
        w.run("add tap", 3, "add", type_if="tap")
        w.run("remove tap", 3, "remove", type_if="tap")

    up, ours = run_both(scenario)
    assert up.step("add tap").rc == 0
    assert up.step("add tap").state["links"]["web3-emu"]["master"] == "xenbr0"
    # (b) docs/differences.md "Altname on a renamed vif".
    for step in ours.steps:
        drop_altname(step, "web3-emu", "vif3.0-emu")
    assert_same(up, ours)


# ------------------------------------------------------------------ bridge discovery
def test_bridge_discovered_from_ports():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, bridge=None)
        w.run("online", 1)

    up, ours = run_both(scenario)
    assert up.step("online").state["links"]["vif1.0"]["master"] == "xenbr0"
    assert_same(up, ours)


def test_xenbr_name_falls_back_to_ethN_bridge():
    def scenario(w: World) -> None:
        w.host.add_bridge("eth5", uplink=False)
        w.host.add_guest(1, bridge="xenbr5")
        w.run("online", 1)

    up, ours = run_both(scenario)
    assert up.step("online").state["links"]["vif1.0"]["master"] == "eth5"
    assert_same(up, ours)


def test_bridge_without_ports_is_discovered_only_by_ours():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0", uplink=False)
        w.host.add_guest(1, bridge=None)
        w.run("online", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    # docs/differences.md "Bridge discovery": upstream (without brctl) only
    # looks at `bridge link`, so a bridge with no port yet is not found.
    assert (a.rc, dict(a.writes)) == (1, {
        "backend/1.0/hotplug-error": "Could not find bridge, and none was specified",
        "backend/1.0/hotplug-status": "error"})
    assert b.rc == 0, b.stderr
    assert b.state["links"]["vif1.0"]["master"] == "xenbr0"


def test_bridge_that_is_not_a_bridge():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, bridge="eth0")
        w.run("online", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    # docs/differences.md "X is not a bridge": upstream fails enslaving under
    # `set -e` (exit 2, no hotplug-status, frontend mtu already written, vif
    # left down with the dummy MAC); ours refuses before changing anything.
    assert a.rc == 2
    assert a.writes == [("frontend/1.0/mtu", "1500")]
    assert a.state["links"]["vif1.0"]["address"] == "fe:ff:ff:ff:ff:ff"
    assert b.rc == 1
    assert dict(b.upstream_writes()) == {"backend/1.0/hotplug-error": "eth0 is not a bridge",
                                         "backend/1.0/hotplug-status": "error"}
    assert "bridges in dom0: xenbr0;" in b.hint()
    assert b.state["links"]["vif1.0"]["address"] == "unchanged"
    assert b.state["links"]["vif1.0"]["up"] is False


# ------------------------------------------------------------------ bad input
BAD_BACKEND_VALUES = [
    ("mtu", "abc", "Invalid MTU in backend/vif/1/0/mtu 'abc'"),
    ("mtu", "10", "Invalid MTU in backend/vif/1/0/mtu '10': must be 68..65535"),
    ("mtu", "70000", "Invalid MTU in backend/vif/1/0/mtu '70000': must be 68..65535"),
    ("mac", "01:16:3e:00:00:01",
     "Invalid guest MAC address in backend/vif/1/0/mac '01:16:3e:00:00:01': multicast addresses cannot be used"),
    ("mac", "zz", "Invalid guest MAC address in backend/vif/1/0/mac 'zz'"),
    ("ip", "bogus", "Invalid IP address 'bogus' in backend/vif/1/0/ip"),
    ("bridge", "xen br0", "Invalid bridge name 'xen br0'"),
]


@pytest.mark.parametrize(("key", "value", "error"), BAD_BACKEND_VALUES,
                         ids=[f"{k}={v}" for k, v, _ in BAD_BACKEND_VALUES])
def test_bad_backend_value(key, value, error):
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, extra_backend={key: value})
        w.run("online", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    # (c) docs/differences.md "Input validation": ours refuses bad values with
    # hotplug-error and leaves the vif untouched.  Upstream ignores the key
    # (mac, ip: vif-bridge never uses them; mtu: `ip link set … mtu X || :`),
    # except a bridge name with a space, which it does not find.
    assert b.rc == 1
    assert dict(b.upstream_writes()) == {"backend/1.0/hotplug-error": error, "backend/1.0/hotplug-status": "error"}
    assert b.state["links"]["vif1.0"]["address"] == "unchanged"
    assert b.state["ports"] == [("eth0", "xenbr0", "forwarding", 1500, True)]
    if key == "bridge":
        assert (a.rc, dict(a.writes)) == (1, {"backend/1.0/hotplug-error": "Could not find bridge device xen br0",
                                              "backend/1.0/hotplug-status": "error"})
    else:
        assert a.rc == 0, a.stderr
        assert a.writes[-1] == ("backend/1.0/hotplug-status", "connected")
        assert a.state["links"]["vif1.0"]["master"] == "xenbr0"
        if key == "mtu" and value != "abc":
            assert ("frontend/1.0/mtu", value) in a.writes  # upstream passes junk on


def test_bad_mtu_with_vifname_rolls_back_rename():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, vifname="web1", extra_backend={"mtu": "abc"})
        w.run("online", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    assert a.rc == 0 and "web1" in a.state["links"]
    # docs/differences.md "Rollback of a failed online".
    assert b.rc == 1
    assert "web1" not in b.state["links"]
    assert b.state["links"]["vif1.0"] == {"kind": "veth", "master": None, "mtu": 1500, "up": False,
                                          "operstate": "DOWN", "altnames": [], "address": "unchanged"}


def test_invalid_command():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.run("frob", 1, "frob")

    up, ours = run_both(scenario)
    a, b = up.step("frob"), ours.step("frob")
    assert (a.rc, a.writes) == (1, [])
    # (c) docs/differences.md "Errors always reach xenstore": ours also writes hotplug-error.
    assert b.rc == 1
    assert dict(b.upstream_writes()) == {"backend/1.0/hotplug-error": "Invalid command: frob",
                                         "backend/1.0/hotplug-status": "error"}
    assert b.hint() == " (expected one of online, offline, add, remove)"
    assert a.state == b.state


def test_invalid_argument_key():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.run("online", 1, extra_args=("bad-key=1",))

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    # upstream: `eval bad-key=1` is "command not found" under set -e: exit 127, silent.
    assert (a.rc, a.writes) == (127, [])
    # docs/differences.md "Arguments": ours rejects keys that are not variable names.
    assert b.rc == 1
    assert dict(b.writes)["backend/1.0/hotplug-error"] == \
        "Invalid argument 'bad-key=1': 'bad-key' is not a variable name"
    assert a.state == b.state


def test_quoted_argument_values():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, bridge=None)
        w.run("online", 1, extra_args=('bridge="xenbr0"',))

    up, ours = run_both(scenario)
    assert up.step("online").rc == 0
    assert_same(up, ours)


def test_argument_values_are_never_evaluated():
    marker: dict[str, str] = {}

    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, bridge=None)
        path = f"{w.host.workdir}/evaluated"
        w.run("online", 1, extra_args=(f"bridge=$(touch {path})xenbr0",))
        marker[w.impl] = str(os.path.exists(path))

    up, ours = run_both(scenario)
    # docs/differences.md "Arguments": upstream runs `eval` on every k=v argument.
    assert marker == {"upstream": "True", "ours": "False"}
    assert up.step("online").rc == 0
    b = ours.step("online")
    assert b.rc == 1
    assert dict(b.writes)["backend/1.0/hotplug-error"].startswith("Invalid bridge name '$(touch ")


def test_online_with_missing_vif():
    def scenario(w: World) -> None:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1)
        w.host.remove_guest_link(1)
        w.run("online", 1)

    up, ours = run_both(scenario)
    a, b = up.step("online"), ours.step("online")
    # upstream: `ip link set dev vif1.0 down` fails inside a function under set -e: exit 1, silent.
    assert (a.rc, a.writes) == (1, [])
    # docs/differences.md "Cannot find interface".
    assert b.rc == 1
    assert dict(b.writes) == {"backend/1.0/hotplug-error": "Cannot find interface vif1.0",
                              "backend/1.0/hotplug-status": "error"}
    assert a.state == b.state


def test_failing_hook_rolls_back_ours_only():
    """Ours only (upstream's hook dir is the system's /etc/xen/scripts/vif-post.d)."""
    with world("ours") as w:
        w.host.add_bridge("xenbr0")
        w.host.add_guest(1, vifname="web1")
        hooks = os.path.join(w.host.workdir, "scripts", "vif-post.d")
        os.makedirs(hooks)
        out = os.path.join(w.host.workdir, "hook.out")
        hook = os.path.join(hooks, "10-fail.hook")
        with open(hook, "w") as f:
            f.write(f'echo "$command $type_if $dev $vif $bridge $XENBUS_PATH" > {out}\nfalse\n')
        os.chmod(hook, 0o755)
        before = settled_snapshot(w.host, {})
        step = w.run("online", 1, extra_env={"XENSCRIPTS_SCRIPT_DIR": os.path.dirname(hooks)})
        # docs/differences.md "Hooks" and "Rollback of a failed online".
        with open(out) as f:
            assert f.read().split() == ["online", "vif", "web1", "vif1.0", "xenbr0",
                                        "backend/vif/1/0"]
        assert step.rc == 1
        assert dict(step.writes)["backend/1.0/hotplug-status"] == "error"
        assert dict(step.writes)["backend/1.0/hotplug-error"].startswith(f"hook {hook} failed with status 1")
        assert ("frontend/1.0/mtu", "1500") in step.writes  # written before the hook ran
        after = snapshot(w.host, {})
        assert after == before
