"""Forget a vif's connections: conntrack entries to or from its addresses.

A ctnetlink dump and delete over a plain netlink socket (standard library):
pyroute2's ``Conntrack`` takes ~10 ms per dump even of an empty table (its
asyncio machinery), more than the rest of a warm vif online together. The
socket is opened in the calling thread, so in the caller's namespace.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

NETLINK_NETFILTER = 12
CT_GET, CT_DELETE = (1 << 8) | 1, (1 << 8) | 2   # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_*
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE = 1, 2, 18
CTA_TUPLE_IP = 1
NLA_TYPE_MASK = 0x3FFF
COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"


def flush_addresses(ips: tuple[str, ...]) -> int:
    """Delete every conntrack entry whose original or reply tuple names one of *ips*; return how many."""
    if not ips or not _has_entries():
        return 0
    nets = [ipaddress.ip_network(item, strict=False) for item in ips]
    deleted = 0
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        mine = [net for net in nets if net.version == version]
        if mine:
            deleted += _flush_family(family, mine)
    return deleted


def _has_entries() -> bool:
    """False when this namespace tracks nothing (the common case on a quiet dom0: skip the dump)."""
    try:
        with open(COUNT, encoding="ascii") as f:
            return int(f.read().strip() or "0") > 0
    except (OSError, ValueError):
        return os.path.exists("/proc/sys/net/netfilter")


def _flush_family(family: int, nets: list) -> int:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        doomed = [attrs for attrs in _dump(sock, family) if _names(attrs, family, nets)]
        deleted = 0
        for seq, attrs in enumerate(doomed, 2):
            body = _attr(CTA_TUPLE_ORIG, attrs[CTA_TUPLE_ORIG], nested=True)
            if CTA_ZONE in attrs:
                body += _attr(CTA_ZONE, attrs[CTA_ZONE])
            sock.send(_message(CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, family, body))
            if _ack(sock) == 0:
                deleted += 1
        return deleted


def _message(kind: int, flags: int, seq: int, family: int, body: bytes = b"") -> bytes:
    payload = struct.pack("BBH", family, 0, 0) + body
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload


def _attr(kind: int, value: bytes, nested: bool = False) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind | (0x8000 if nested else 0)) + value
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _messages(sock: socket.socket):
    """(type, payload after nfgenmsg/error header) of each netlink message received, until DONE."""
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
            if kind == NLMSG_DONE:
                return
            yield kind, data[offset + 16:offset + length]
            if kind == NLMSG_ERROR:
                return
            offset += (length + 3) & ~3


def _dump(sock: socket.socket, family: int):
    sock.send(_message(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, family))
    for kind, payload in _messages(sock):
        if kind != NLMSG_ERROR:
            yield _attrs(payload[4:])


def _ack(sock: socket.socket) -> int:
    """The errno of the kernel's answer (0: done; ENOENT: someone deleted it first)."""
    for kind, payload in _messages(sock):
        if kind == NLMSG_ERROR:
            return -struct.unpack_from("=i", payload)[0]
    return 0


def _names(attrs: dict[int, bytes], family: int, nets: list) -> bool:
    size = 4 if family == socket.AF_INET else 16
    for tuple_kind in (CTA_TUPLE_ORIG, CTA_TUPLE_REPLY):
        ip = _attrs(_attrs(attrs.get(tuple_kind, b"")).get(CTA_TUPLE_IP, b""))
        for raw in ip.values():
            if len(raw) == size and any(ipaddress.ip_address(raw) in net for net in nets):
                return True
    return False
