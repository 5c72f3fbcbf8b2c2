"""Bridge VLAN filtering requests for a port, as data (this kernel has no vlan_filtering to run them)."""

from __future__ import annotations

import pytest

from xenscripts.netlink.bridgevlan import PVID, UNTAGGED, port_plan, wanted
from xenscripts.xen.vlanspec import parse_vlan_key

FRESH_PORT = {1: PVID | UNTAGGED}  # what the kernel gives a new port of a bridge with default_pvid 1


@pytest.mark.parametrize(("vlan", "current", "golden"), [
    ("10", FRESH_PORT, [("del", {"vid": 1}), ("add", {"vid": 10, "flags": 6})]),
    ("10p/100-110/200u", FRESH_PORT,
     [("del", {"vid": 1}), ("add", {"vid": 10, "flags": 6}), ("add", {"vid": 200, "flags": 4}),
      ("add", {"vid": "100-110"})]),
    ("10p/100+10x2", {}, [("add", {"vid": 10, "flags": 6}), ("add", {"vid": 100}), ("add", {"vid": 110}),
                          ("add", {"vid": 120})]),
    ("1", FRESH_PORT, []),  # already so: nothing is sent
    ("10p/20-21", {10: 6, 20: 0, 21: 0}, []),
    ("20", {10: 6, 20: 0}, [("del", {"vid": 10}), ("add", {"vid": 20, "flags": 6})]),  # a tagged VLAN made PVID
    ("5p/7-8u", {}, [("add", {"vid": 5, "flags": 6}), ("add", {"vid": 7, "flags": 4}),
                     ("add", {"vid": 8, "flags": 4})]),
    ("30", {1: 6, 2: 0, 3: 0, 9: 0}, [("del", {"vid": "1-3"}), ("del", {"vid": 9}), ("add", {"vid": 30, "flags": 6})]),
])
def test_port_plan_golden(vlan, current, golden):
    assert port_plan(parse_vlan_key(vlan), current) == golden


def test_applying_the_plan_reaches_the_spec():
    spec = parse_vlan_key("10p/100-110/200u")
    port = dict(FRESH_PORT)
    for command, info in port_plan(spec, port):
        a, _, b = str(info["vid"]).partition("-")
        for vid in range(int(a), int(b or a) + 1):
            if command == "del":
                del port[vid]
            else:
                port[vid] = info.get("flags", 0)
    assert port == wanted(spec)
    assert port_plan(spec, port) == []
