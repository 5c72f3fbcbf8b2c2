"""Differential tests: Debian's ``vif-openvswitch`` and ours on the same simulated host and switch.

Each scenario runs for upstream, then (the guest made anew, the switch
reset) for ours, and every step is compared on what an admin, libxl and
netback see: exit status, xenstore writes, the port's bridge and its
``tag``/``trunks``/``vlan_mode``/external-ids, the interface's external-ids,
the vif's MAC, MTU and UP flag, the flows on the bridge. Observed with
``ovs-vsctl``, ``ovs-ofctl``, ``ip -j`` and the simulated xenstored.

Every difference we accept is spelled out where it is met, with its row in
docs/differences.md; anything else fails.
"""

from __future__ import annotations

import os

import pytest

from tests.host import ovsbed as bed
from tests.host.ovsbed import BRIDGE, OvsBed, guest, hotplug
from tests.host.test_differential import differences, norm_path
from xensim.ours import upstream_command

ovsbed, simhost, ovs = bed.ovsbed, bed.simhost, bed.ovs  # the module's fixtures
UPSTREAM = upstream_command("vif-openvswitch")


def observe(b: OvsBed, dev: str, mac_before: str) -> dict:
    """What the switch and dom0 show of *dev* (no row ids or port numbers: those are fresh per run).

    The vif's MAC is ``unchanged`` while it is the random one the veth was made with.
    """
    port, iface, link = b.switch.port(dev), b.switch.interface(dev), b.host.link(dev)
    if link is not None and link["address"] == mac_before:
        link["address"] = "unchanged"
    return {
        "bridge": b.switch.bridge_of(dev),
        "port": {k: port[k] for k in ("tag", "trunks", "vlan_mode", "external_ids")} if port else None,
        "interface": iface["external_ids"] if iface else None,
        "link": {"address": link["address"], "up": "UP" in link["flags"], "mtu": link["mtu"]} if link else None,
        "flows": [f for f in b.switch.flows(BRIDGE) if "cookie=0x7873" in f],
        "ports": b.switch.ports(BRIDGE),
    }


def run_steps(b: OvsBed, argv0: list[str] | None, bridge: str, steps: list[tuple[str, str]],
              nic_type: str = "vif", **kw) -> list[dict]:
    """Make guest 1 on *bridge*, run (command, type_if) *steps* with *argv0*; each step's outcome."""
    g = guest(b.host, bridge=bridge, nic_type=nic_type, **kw)
    dev = g.emu if nic_type == "ioemu" else g.vif
    mac_before = b.host.link(dev)["address"]
    out = []
    for command, type_if in steps:
        start = len(b.host.xs.writes)
        cp = hotplug(b.host, b.switch, 1, command, type_if=type_if, argv0=argv0)
        out.append({"step": command, "rc": cp.returncode, "stderr": cp.stderr,
                    "writes": [(norm_path(p), v) for p, v in b.host.xs.writes[start:]],
                    "state": observe(b, dev, mac_before)})
    return out


def both(b: OvsBed, bridge: str, steps: list[tuple[str, str]], **kw) -> tuple[list[dict], list[dict]]:
    upstream = run_steps(b, UPSTREAM, bridge, steps, **kw)
    b.reset()
    return upstream, run_steps(b, None, bridge, steps, **kw)


def assert_same(upstream: list[dict], ours: list[dict]) -> None:
    for a, b in zip(upstream, ours, strict=True):
        diff = differences({k: a[k] for k in ("rc", "writes", "state")},
                           {k: b[k] for k in ("rc", "writes", "state")})
        assert not diff, (f"step {a['step']!r} differs:\n  " + "\n  ".join(diff)
                          + f"\nupstream stderr: {a['stderr']}\nours stderr: {b['stderr']}")


def accept_frontend_mtu(ours: list[dict]) -> None:
    """Ours writes the frontend's ``mtu`` as vif-bridge does (docs/differences.md: vif-openvswitch MTU)."""
    for step in ours:
        if step["step"] == "online":
            assert ("frontend/1.0/mtu", "1500") in step["writes"], step["writes"]
            step["writes"].remove(("frontend/1.0/mtu", "1500"))


ONLINE_TWICE_OFFLINE = [("online", "vif"), ("online", "vif"), ("offline", "vif")]


@pytest.mark.parametrize("bridge", ["ovsbr0", "ovsbr0.10", "ovsbr0:20:30", "ovsbr0:20"])
def test_same_as_upstream(ovsbed, ovs, bridge):
    upstream, ours = both(ovsbed, bridge, ONLINE_TWICE_OFFLINE)
    assert upstream[0]["rc"] == 0 and upstream[0]["state"]["bridge"] == BRIDGE, upstream[0]["stderr"]
    accept_frontend_mtu(ours)
    assert_same(upstream, ours)


def test_tag_with_trunks_is_native_untagged(ovsbed, ovs):
    """Upstream writes tag and trunks with no vlan_mode: an access port, and ovs-vswitchd says
    "ignoring trunks in favor of implicit vlan". Ours sets vlan_mode=native-untagged, the tag
    untagged and the trunks tagged (docs/differences.md: vif-openvswitch tag with trunks)."""
    log = os.path.join(ovsbed.switch.rundir, "ovs-vswitchd.log")
    upstream = run_steps(ovsbed, UPSTREAM, "ovsbr0.10:20:30", ONLINE_TWICE_OFFLINE)
    assert IGNORED_TRUNKS in _read(log)  # ovs-vswitchd's own words: upstream's trunks do nothing
    ovsbed.reset()
    seen = _read(log).count(IGNORED_TRUNKS)
    ours = run_steps(ovsbed, None, "ovsbr0.10:20:30", ONLINE_TWICE_OFFLINE)
    assert _read(log).count(IGNORED_TRUNKS) == seen  # ours: the trunks are carried
    for a, b in zip(upstream[:2], ours[:2], strict=True):
        assert a["state"]["port"]["vlan_mode"] == [] and b["state"]["port"]["vlan_mode"] == "native-untagged"
        assert a["state"]["port"]["tag"] == b["state"]["port"]["tag"] == 10
        assert a["state"]["port"]["trunks"] == b["state"]["port"]["trunks"] == [20, 30]
        b["state"]["port"]["vlan_mode"] = []
    accept_frontend_mtu(ours)
    assert_same(upstream, ours)


IGNORED_TRUNKS = "port vif1.0: ignoring trunks in favor of implicit vlan"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_tap_same_as_upstream(ovsbed, ovs):
    upstream, ours = both(ovsbed, "ovsbr0.10", [("add", "tap"), ("remove", "tap")], nic_type="ioemu")
    assert upstream[0]["rc"] == 0 and upstream[0]["state"]["port"]["tag"] == 10, upstream[0]["stderr"]
    assert_same(upstream, ours)


def test_bad_bridge_string_same_error(ovsbed, ovs):
    upstream, ours = both(ovsbed, "ovsbr0.x", [("online", "vif")])
    assert upstream[0]["rc"] == 1 and ("backend/1.0/hotplug-error", "No valid bridge was specified") \
        in upstream[0]["writes"]
    # upstream has already run setup_virtual_bridge_port (down, fe:ff MAC) when its regex fails;
    # ours checks first and leaves the vif alone (docs/differences.md: bad input configures nothing)
    assert upstream[0]["state"]["link"]["address"] == "fe:ff:ff:ff:ff:ff"
    assert ours[0]["state"]["link"]["address"] == "unchanged"
    ours[0]["state"]["link"]["address"] = "fe:ff:ff:ff:ff:ff"
    assert_same(upstream, ours)


def test_missing_bridge_fails_like_upstream_and_rolls_back(ovsbed, ovs):
    upstream, ours = both(ovsbed, "nosuchbr", [("online", "vif"), ("offline", "vif")])
    assert upstream[0]["rc"] == ours[0]["rc"] == 1
    assert ours[0]["state"]["link"]["address"] == "unchanged"  # ours: nothing touched
    for step in (upstream[0], ours[0]):
        assert ("backend/1.0/hotplug-status", "error") in step["writes"]
        step["writes"] = [w for w in step["writes"] if not w[0].endswith("/hotplug-error")]  # words differ
    for step in upstream + ours:
        step["state"]["link"]["address"] = "(compared above)"
    assert_same(upstream, ours)
