"""The netlink message parsers, fed the kernel's own bytes (recorded by netlink_dumps/record.py).

As pyroute2 tests its decoders: a recorded dump in, the values the kernel
was given out (a bridge with a port, an altname and alias, IPv4/IPv6
addresses with a peer, a label and lifetimes, routes in two tables).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from xenscripts.core.errors import HotplugError
from xenscripts.netbridge import observe
from xenscripts.netlink import link, rtnl

DUMPS = Path(__file__).resolve().parent / "netlink_dumps"


def raw(name: str) -> bytes:
    return bytes.fromhex((DUMPS / f"{name}.hex").read_text())


def messages(name: str, cls: type) -> Iterator:
    data, offset = raw(name), 0
    while offset < len(data):
        (length,) = struct.unpack_from("=I", data, offset)
        msg = cls(data[offset:offset + length])
        msg.decode()
        yield msg
        offset += (length + 3) & ~3


def by_name() -> dict[str, object]:
    return {m.get_attr("IFLA_IFNAME"): m for m in messages("links", ifinfmsg)}


def test_a_bridge_port_as_the_netlink_verbs_see_it():
    msgs = by_name()
    port, bridge = link.link_from_msg(msgs["vif1.0"]), link.link_from_msg(msgs["br0"])
    assert (port.name, port.mtu, port.up, port.kind, port.altnames) == ("vif1.0", 1400, True, "veth", ("xenvif",))
    assert port.master == bridge.index and bridge.is_bridge and not port.is_bridge
    assert bridge.address == "02:00:00:00:00:01" and bridge.master is None


def test_the_plain_socket_reads_each_link_as_pyroute2_does():
    """rtnl.parse_link (the hot path's parser) and link_from_msg (pyroute2's decode) agree on every link."""
    data, offset, seen = raw("links"), 0, 0
    while offset < len(data):
        (length,) = struct.unpack_from("=I", data, offset)
        message = data[offset:offset + length]
        decoded = ifinfmsg(message)
        decoded.decode()
        assert link.Link(**rtnl.parse_link(message)) == link.link_from_msg(decoded)
        offset += (length + 3) & ~3
        seen += 1
    assert seen >= 3


def test_a_namespace_snapshot_answers_by_name():
    links = link.Links.of(messages("links", ifinfmsg))
    port = links["vif1.0"]
    assert (port.alias, links.master_of("vif1.0"), links.ports_of("br0"), links.bridges()) == \
        ("guest-one", "br0", ["vif1.0"], ["br0"])
    lo = links["lo"]
    assert (lo.kind, lo.master, lo.up, lo.address, links.master_of("lo")) == \
        (None, None, False, "00:00:00:00:00:00", None)


def test_addresses_keep_peer_label_and_lifetimes():
    found = {(a.local, a.prefixlen): a for a in map(observe.address_from_msg, messages("addrs", ifaddrmsg))}
    p2p = found[("192.0.2.9", 32)]
    assert (p2p.peer, p2p.label, p2p.family) == ("192.0.2.10", "vif1.0:a", socket.AF_INET)
    plain = found[("192.0.2.1", 24)]
    assert (plain.peer, plain.label, plain.broadcast, plain.valid) == (None, "br0", None, observe.FOREVER)
    v6 = found[("2001:db8::1", 64)]
    assert v6.family == socket.AF_INET6 and v6.label is None
    assert 0 < v6.preferred <= 500 < v6.valid <= 1000  # remaining lifetimes, counted down since recording


def test_routes_keep_table_gateway_metric_and_proto():
    routes = {(r.dst, r.dst_len, r.table): r for r in map(observe.route_from_msg, messages("routes", rtmsg))}
    via = routes[("198.51.100.0", 24, 254)]
    assert (via.gateway, via.priority, via.movable) == ("192.0.2.254", 20, True)
    other = routes[("203.0.113.0", 24, 100)]
    assert (other.proto, other.gateway, other.movable, other.describe()) == (4, None, True, "203.0.113.0/24 table 100")
    assert not routes[("192.0.2.0", 24, 254)].movable  # proto kernel: the address makes it again
    assert not routes[("192.0.2.1", 32, 255)].movable  # the local table


def test_the_raw_address_scan_finds_each_family_of_one_link():
    index = by_name()["br0"]["index"]
    found: list[tuple[int, int]] = []
    assert not link.address_scopes(raw("addrs"), index, found)  # no NLMSG_DONE in the recording
    assert found == [(socket.AF_INET, 0), (socket.AF_INET6, 0)]
    done = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
    assert link.address_scopes(done, index, found)


def test_the_raw_address_scan_reports_a_refused_dump():
    error = struct.pack("=IHHIIi", 36, 2, 0, 1, 0, -22) + bytes(16)
    with pytest.raises(HotplugError, match="errno 22"):
        link.address_scopes(error, 7, [])
