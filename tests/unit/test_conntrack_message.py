"""The ctnetlink request that deletes a vif's conntrack entries by filter, read back attribute by attribute."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from xenscripts.firewall.conntrack import delete_message


def attributes(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        size, kind = struct.unpack_from("=HH", data, at)
        out.append((kind & 0x7FFF, data[at + 4:at + size]))
        at += size + (-size % 4)
    return out


@pytest.mark.parametrize(("addr", "direction", "field", "ip_attr", "tuple_attr", "flags_attr", "bit"), [
    ("10.1.0.11", "orig", "src", 1, 1, 1, 1),
    ("10.1.0.11", "reply", "dst", 2, 2, 2, 2),
    ("2001:db8::11", "orig", "dst", 4, 1, 1, 2),
])
def test_delete_by_filter(addr, direction, field, ip_attr, tuple_attr, flags_attr, bit):
    ip = ipaddress.ip_address(addr)
    msg = delete_message(ip, direction, field, seq=7)
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), 0x0102, 0x5, 7)  # CTNETLINK DELETE, REQUEST|ACK
    family, version, _res = struct.unpack_from("=BBH", msg, 16)
    assert (family, version) == (socket.AF_INET if ip.version == 4 else socket.AF_INET6, 0)
    (t_kind, t_body), (f_kind, f_body) = attributes(msg[20:])
    assert t_kind == tuple_attr and f_kind == 25                   # the tuple, and CTA_FILTER
    ((ip_kind, ip_body),) = attributes(t_body)                     # CTA_TUPLE_IP, nothing else: no exact tuple
    assert ip_kind == 1 and attributes(ip_body) == [(ip_attr, ip.packed)]
    assert attributes(f_body) == [(flags_attr, struct.pack("=I", bit))]
