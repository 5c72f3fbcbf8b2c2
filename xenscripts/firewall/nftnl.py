"""nf_tables requests the kernel answers by lookup, not by a dump of a whole table: one set element, one rule.

libnftables fetches every element of a set for ``get element`` and every rule
of a chain to find one; with hundreds of vifs those reads are what a hotplug
would pay. Each function here is one netlink request in this thread's network
namespace (hotplugd threads join their caller's), and answers None when the
kernel's reply does not tell, so the caller falls back to libnftables.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM = 6, 7, 12, 13
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_NESTED = 0x8000
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE = 1, 2, 3
NFTA_VERDICT_CHAIN = 2
FAMILIES = {"ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10, "inet": 1}
TIMEOUT = 2.0
HEAD = 512  # rules looked at, at most, for the ones just inserted at the top of a chain


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def _request(message: int, flags: int, family: str, body: bytes) -> bytes:
    body = struct.pack("=BBH", FAMILIES[family], 0, 0) + body  # nfgenmsg
    return struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_NFTABLES << 8 | message,
                       NLM_F_REQUEST | flags, 1, 0) + body


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, whole message) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        yield kind, data[offset:offset + length]
        offset += (length + 3) & ~3


def _error(message: bytes) -> int:
    return -struct.unpack_from("=i", message, 16)[0]


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    sock.settimeout(TIMEOUT)
    return sock


def _lookup(message: int, family: str, body: bytes, answer: int) -> bytes | bool | None:
    """One non-dump request: the *answer* message the kernel sent back, False for ENOENT (not there), None
    when it cannot tell."""
    try:
        with _socket() as nl:
            nl.send(_request(message, 0, family, body))
            reply = nl.recv(65536)
    except OSError:
        return None
    for kind, found in _messages(reply):
        if kind == NLMSG_ERROR:
            return False if _error(found) == errno.ENOENT else None
        return found if kind == NFNL_SUBSYS_NFTABLES << 8 | answer else None
    return None


def kernel_has_ifname(family: str, table: str, set_name: str, name: str) -> bool | None:
    """Whether the kernel's set holds the interface name *name* (an ``ifname``-keyed set): one
    NFT_MSG_GETSETELEM lookup, O(1) in a hash set; None when it cannot tell."""
    key = attr(1, name.encode().ljust(16, b"\0"))  # NFTA_DATA_VALUE: IFNAMSIZ bytes
    element = attr(NFTA_NESTED | 1, attr(NFTA_NESTED | 1, key))  # NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { .. } }
    body = _string(1, table) + _string(2, set_name) + attr(NFTA_NESTED | 3, element)
    found = _lookup(NFT_MSG_GETSETELEM, family, body, NFT_MSG_NEWSETELEM)  # the table or set missing: ENOENT
    return True if isinstance(found, bytes) else found


def jumps_to(message: bytes, target: str) -> bool:
    """Whether a rule (a NEWRULE message) holds a jump or goto to chain *target*."""
    return _string(NFTA_VERDICT_CHAIN, target) in message


def _handle(message: bytes) -> int | None:
    """NFTA_RULE_HANDLE of a NEWRULE message."""
    offset = 20  # nlmsghdr + nfgenmsg
    while offset + 4 <= len(message):
        size, kind = struct.unpack_from("=HH", message, offset)
        if size < 4:
            return None
        if kind & 0x3FFF == NFTA_RULE_HANDLE and size == 12:  # without the NESTED and BYTEORDER flags
            return int(struct.unpack_from(">Q", message, offset + 4)[0])
        offset += (size + 3) & ~3
    return None


def rule_jumps(family: str, table: str, chain: str, handle: int, target: str) -> bool | None:
    """Whether rule *handle* of *chain* is there and jumps to *target* (one NFT_MSG_GETRULE by handle)."""
    body = _string(NFTA_RULE_TABLE, table) + _string(NFTA_RULE_CHAIN, chain) + attr(NFTA_RULE_HANDLE,
                                                                                   struct.pack(">Q", handle))
    found = _lookup(NFT_MSG_GETRULE, family, body, NFT_MSG_NEWRULE)
    return jumps_to(found, target) if isinstance(found, bytes) else found


def head_jumps(family: str, table: str, chain: str, target: str, count: int) -> list[int] | None:
    """The handles of the *count* rules jumping to *target* among the first HEAD rules of *chain*.

    A dump of the chain cut short as soon as they are found (rules inserted with
    ``-I`` are at its top); None when fewer are there."""
    found: list[int] = []
    seen = 0
    body = _string(NFTA_RULE_TABLE, table) + _string(NFTA_RULE_CHAIN, chain)
    try:
        with _socket() as nl:
            nl.send(_request(NFT_MSG_GETRULE, NLM_F_DUMP, family, body))
            while seen < HEAD:
                data = nl.recv(65536)
                for kind, message in _messages(data):
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        return found if len(found) == count else None
                    seen += 1
                    handle = _handle(message)
                    if handle is not None and jumps_to(message, target):
                        found.append(handle)
                        if len(found) == count:
                            return found
    except OSError:
        return None
    return None
