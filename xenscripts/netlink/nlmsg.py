"""The netlink wire format every raw socket of ours speaks: message headers, attributes, the kernel's errors.

NETLINK_ROUTE (``rtnl.py``, ``link.py``'s address dump) and NETLINK_NETFILTER
(``firewall/nftnl.py``, ``conntrack.py``, ``monitor.py``) alike. Standard library only.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, seq, pid
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF  # an attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER


def request(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One request message (``NLM_F_REQUEST`` and *flags*) carrying *body*."""
    return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def attrs(data: bytes | memoryview, offset: int = 0) -> Iterator[tuple[int, bytes | memoryview]]:
    """(type without the flags, payload) of each attribute in *data* from *offset*."""
    while offset + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, offset)
        if size < 4:
            return
        yield kind & NLA_TYPE_MASK, data[offset + 4:offset + size]
        offset += (size + 3) & ~3


def messages(data: bytes, seq: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, whole message) of each message in one datagram; only those answering *seq*, if given."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, got, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            return
        if seq is None or got == seq:
            yield kind, data[offset:offset + length]
        offset += (length + 3) & ~3


def seq_of(message: bytes) -> int:
    """The sequence number of *message*."""
    return HEADER.unpack_from(message)[3]


def error_code(message: bytes) -> int:
    """The errno of an NLMSG_ERROR message (0: an acknowledgement)."""
    return -struct.unpack_from("=i", message, HEADER.size)[0]
