"""Bridge VLAN filtering for a port: the requests as data, then as netlink bytes beside iproute2's.

This machine's kernel has no vlan_filtering to run them (tests/host/test_vif_bridge_vlan.py
runs them for real where it has): the plan is golden-tested, and every message
ensure_port_vlans sends is compared, byte for byte, with what ``bridge vlan`` and
``ip link … vlan_filtering`` send for the same request (netlink_dumps/record_bridge_vlan.py
recorded them with strace).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xenscripts.netlink.bridgevlan import PVID, UNTAGGED, ensure_port_vlans, port_plan, wanted
from xenscripts.netlink.link import Link, Net, Undo
from xenscripts.xen.vlanspec import parse_vlan_key

FRESH_PORT = {1: PVID | UNTAGGED}  # what the kernel gives a new port of a bridge with default_pvid 1


PLANS = [
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
]


@pytest.mark.parametrize(("vlan", "current", "golden"), PLANS)
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


# ------------------------------------------------------------- the netlink messages, beside iproute2's
RECORDED = json.loads((Path(__file__).parent / "netlink_dumps" / "bridge_vlan.json").read_text())
BRIDGE, PORT = Link(4, "b0", 1500, "02:00:00:00:00:01", True, None, "bridge", ()), \
    Link(7, "d0", 1500, "fe:ff:ff:ff:ff:ff", False, 4, "veth", ())


def normalise(message: bytes) -> str:
    """As record_bridge_vlan.py: sequence number, port id and ifindex zeroed."""
    return (message[:8] + b"\0" * 8 + message[16:20] + b"\0" * 4 + message[24:]).hex()


def expected(command_line: str) -> str:
    """iproute2's message for *command_line*, as pyroute2 spells the same request.

    One byte differs, in ``ip link set … type bridge``: pyroute2 counts the NUL after "bridge"
    in IFLA_INFO_KIND's length (11), iproute2 does not (10); the padding is the same and the
    kernel's NLA_STRING policy takes both.
    """
    kind_iproute2, kind_pyroute2 = "0a000100" + b"bridge".hex(), "0b000100" + b"bridge".hex()
    return RECORDED[command_line].replace(kind_iproute2, kind_pyroute2)


def iproute2(command: str, info: dict) -> str:
    """The iproute2 command line that asks the kernel what ``vlan_filter(command, vlan_info=info)`` asks."""
    words = {PVID | UNTAGGED: " pvid untagged", UNTAGGED: " untagged", 0: ""}[info.get("flags", 0)]
    return f"bridge vlan {command} dev d0 vid {info['vid']}{words}"


class _Attrs:
    """A decoded netlink attribute set, as much of it as bridgevlan.py reads."""

    def __init__(self, **attrs) -> None:
        self.attrs = attrs

    def get_attr(self, name: str):
        return self.attrs.get(name)

    def __getitem__(self, key: str):
        return self.attrs[key]


class RecordingSocket:
    """The netlink socket as ensure_port_vlans uses it: reads answered from a model of the kernel,
    writes encoded by pyroute2 itself (IPBatch: the bytes IPRoute would send) and applied to the model."""

    def __init__(self, filtering: bool, port: dict[int, int]) -> None:
        from pyroute2 import IPBatch

        self.batch, self.filtering, self.port, self.sent = IPBatch(), filtering, dict(port), []

    def close(self) -> None:
        self.batch.close()

    def _sent(self) -> None:
        self.sent.append(normalise(bytes(self.batch.batch)))
        self.batch.reset()

    def link(self, command: str, **kw):
        if command == "get":
            data = _Attrs(IFLA_BR_VLAN_FILTERING=int(self.filtering))
            return [_Attrs(index=kw["index"], IFLA_LINKINFO=_Attrs(IFLA_INFO_DATA=data))]
        if command == "dump":
            vlans = [("IFLA_BRIDGE_VLAN_INFO", {"vid": vid, "flags": flags}) for vid, flags in self.port.items()]
            return [_Attrs(index=PORT.index, IFLA_AF_SPEC={"attrs": vlans})]
        self.batch.link(command, **kw)
        self._sent()
        self.filtering = bool(kw["br_vlan_filtering"])
        return []

    def vlan_filter(self, command: str, index: int, vlan_info: dict) -> None:
        self.batch.vlan_filter(command, index=index, vlan_info=vlan_info)
        self._sent()
        first, _, last = str(vlan_info["vid"]).partition("-")
        for vid in range(int(first), int(last or first) + 1):
            if command == "del":
                self.port.pop(vid, None)
            else:
                self.port[vid] = vlan_info.get("flags", 0)


@contextmanager
def recording(filtering: bool, port: dict[int, int]) -> Iterator[tuple[RecordingSocket, Net]]:
    sock = RecordingSocket(filtering, port)
    net = Net()
    net._ipr = sock
    try:
        yield sock, net
    finally:
        sock.close()


@pytest.mark.parametrize(("vlan", "current", "golden"), PLANS)
def test_each_request_is_what_iproute2_sends(vlan, current, golden):
    """pyroute2's bytes for every request of the plans above equal iproute2's own (record_bridge_vlan.py)."""
    with recording(True, current) as (sock, net):
        for command, info in golden:
            net.ipr.vlan_filter(command, index=PORT.index, vlan_info=info)
        assert sock.sent == [expected(iproute2(command, info)) for command, info in golden]


def test_filtering_switched_on_only_when_off_and_undone_on_failure():
    spec = parse_vlan_key("10p/100-110/200u")
    with recording(False, FRESH_PORT) as (sock, net):
        undo = Undo()
        ensure_port_vlans(net, BRIDGE, PORT, spec, "backend/vif/1/0/vlan '10p/100-110/200u'", undo, lambda _: None)
        assert sock.sent == [expected(c) for c in (
            "ip link set b0 type bridge vlan_filtering 1", "bridge vlan del dev d0 vid 1",
            "bridge vlan add dev d0 vid 10 pvid untagged", "bridge vlan add dev d0 vid 200 untagged",
            "bridge vlan add dev d0 vid 100-110")]
        assert sock.port == wanted(spec)
        sock.sent.clear()
        undo.rollback(lambda _: None)  # a later step failed: filtering goes back off as it was
        assert sock.sent == [expected("ip link set b0 type bridge vlan_filtering 0")]


def test_a_bridge_already_filtering_and_a_port_already_so_get_nothing():
    spec = parse_vlan_key("20")
    with recording(True, {10: PVID | UNTAGGED}) as (sock, net):
        ensure_port_vlans(net, BRIDGE, PORT, spec, "vlan '20'", Undo(), lambda _: None)
        assert sock.sent == [expected("bridge vlan del dev d0 vid 10"), expected("bridge vlan add dev d0 vid 20 pvid untagged")]
        sock.sent.clear()
        ensure_port_vlans(net, BRIDGE, PORT, spec, "vlan '20'", Undo(), lambda _: None)  # online again
        assert sock.sent == []
