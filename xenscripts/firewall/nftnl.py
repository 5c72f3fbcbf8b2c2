"""nf_tables requests the kernel answers by lookup, not by a dump of a whole table: one set element, one rule.

libnftables fetches every element of a set for ``get element`` and every rule
of a chain to find one; with hundreds of vifs those reads are what a hotplug
would pay. Each function here is one netlink request in this thread's network
namespace (hotplugd threads join their caller's), and answers None when the
kernel's reply does not tell, so the caller falls back to libnftables.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import socket
import struct

from ..netlink.nlmsg import (
    NETLINK_NETFILTER,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLMSG_DONE,
    NLMSG_ERROR,
    attr,
    attrs,
    error_code,
    messages,
    request,
    seq_of,
)

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM = 6, 7, 12, 13
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE = 1, 2, 3
NFTA_VERDICT_CHAIN = 2
FAMILIES = {"ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10, "inet": 1}
TIMEOUT = 2.0
HEAD = 512  # rules looked at, at most, for the ones just inserted at the top of a chain


def _string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


_SEQ = itertools.count(1)  # one sequence number per message sent, so a reused socket's replies are told apart


def _request(message: int, flags: int, family: str, body: bytes, seq: int) -> bytes:
    return _message(NFNL_SUBSYS_NFTABLES << 8 | message, flags, seq, body, family=FAMILIES[family])


def netlink_socket() -> socket.socket:
    """A NETLINK_NETFILTER socket in this thread's network namespace.

    Closing one waits for the kernel (an RCU grace period, several ms, longer under load): hotplugd keeps
    one per pooled context and closes spares off the request's path; the functions here take the caller's."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    sock.settimeout(TIMEOUT)
    return sock


def _lookup(sock: socket.socket, message: int, family: str, body: bytes, answer: int) -> bytes | bool | None:
    """One non-dump request on *sock*: the *answer* message the kernel sent back, False for ENOENT (not there),
    None when it cannot tell."""
    seq = next(_SEQ)
    try:
        sock.send(_request(message, 0, family, body, seq))
        while True:
            for kind, found in messages(sock.recv(65536), seq):
                if kind == NLMSG_ERROR:
                    return False if error_code(found) == errno.ENOENT else None
                return found if kind == NFNL_SUBSYS_NFTABLES << 8 | answer else None
    except OSError:
        return None


def kernel_has_ifname(sock: socket.socket, family: str, table: str, set_name: str, name: str) -> bool | None:
    """Whether the kernel's set holds the interface name *name* (an ``ifname``-keyed set): one
    NFT_MSG_GETSETELEM lookup, O(1) in a hash set; None when it cannot tell."""
    key = attr(1, name.encode().ljust(16, b"\0"))  # NFTA_DATA_VALUE: IFNAMSIZ bytes
    element = attr(NLA_F_NESTED | 1, attr(NLA_F_NESTED | 1, key))  # NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { .. } }
    body = _string(1, table) + _string(2, set_name) + attr(NLA_F_NESTED | 3, element)
    found = _lookup(sock, NFT_MSG_GETSETELEM, family, body, NFT_MSG_NEWSETELEM)  # the table or set missing: ENOENT
    return True if isinstance(found, bytes) else found


def jumps_to(message: bytes, target: str) -> bool:
    """Whether a rule (a NEWRULE message) holds a jump or goto to chain *target*."""
    return _string(NFTA_VERDICT_CHAIN, target) in message


def _handle(message: bytes) -> int | None:
    """NFTA_RULE_HANDLE of a NEWRULE message (its attributes after nlmsghdr and nfgenmsg)."""
    for kind, payload in attrs(message, 20):
        if kind == NFTA_RULE_HANDLE and len(payload) == 8:
            return int(struct.unpack_from(">Q", payload)[0])
    return None


def rule_jumps(sock: socket.socket, family: str, table: str, chain: str, handle: int, target: str) -> bool | None:
    """Whether rule *handle* of *chain* is there and jumps to *target* (one NFT_MSG_GETRULE by handle)."""
    body = _string(NFTA_RULE_TABLE, table) + _string(NFTA_RULE_CHAIN, chain) + attr(NFTA_RULE_HANDLE,
                                                                                   struct.pack(">Q", handle))
    found = _lookup(sock, NFT_MSG_GETRULE, family, body, NFT_MSG_NEWRULE)
    return jumps_to(found, target) if isinstance(found, bytes) else found


def head_jumps(sock: socket.socket, family: str, table: str, chain: str, target: str, count: int) -> list[int] | None:
    """The handles of the *count* rules jumping to *target* among the first HEAD rules of *chain*.

    A dump of the chain cut short as soon as they are found (rules inserted with ``-I`` are at its
    top), so *sock* is left mid-dump: use it for nothing else. None when fewer are there."""
    found: list[int] = []
    seen = 0
    seq = next(_SEQ)
    body = _string(NFTA_RULE_TABLE, table) + _string(NFTA_RULE_CHAIN, chain)
    try:
        sock.send(_request(NFT_MSG_GETRULE, NLM_F_DUMP, family, body, seq))
        while seen < HEAD:
            for kind, message in messages(sock.recv(65536), seq):
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


# ------------------------------------------------------------------ set elements, added and deleted in one batch
NFT_MSG_DELSETELEM = 14
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NLM_F_CREATE = 0x400
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_DATA_VALUE = 1, 1, 10, 1
_VERBS = {"add": NFT_MSG_NEWSETELEM, "delete": NFT_MSG_DELSETELEM}


def _bounds(value: object) -> tuple[object, object]:
    """(first, last) of a JSON element value: a range, a prefix, or one value."""
    if isinstance(value, dict) and "range" in value:
        return value["range"][0], value["range"][1]
    if isinstance(value, dict) and "prefix" in value:
        net = ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}", strict=False)
        return str(net.network_address), str(net.broadcast_address)
    return value, value


def _field(kind: str, value: object) -> tuple[bytes, bytes]:
    """(first, last) bytes of one key field as the kernel holds it, padded to 4 bytes; equal unless a range.

    Values as our planner writes them or as ``nft -j list`` gives them back (integers in decimal)."""
    low, high = _bounds(value)
    if kind == "ifname":
        if not isinstance(value, str) or len(value.encode()) > 15:
            raise ValueError(value)
        return (value.encode().ljust(16, b"\0"),) * 2
    if kind == "ether":
        mac = bytes(int(part, 16) for part in str(value).split(":"))
        if len(mac) != 6:
            raise ValueError(value)
        return (mac + b"\0\0",) * 2
    if kind in ("ipv4", "ipv6"):
        first, last = ipaddress.ip_address(str(low)), ipaddress.ip_address(str(high))
        if first.version != last.version or first.version != (4 if kind == "ipv4" else 6):
            raise ValueError(value)
        return first.packed, last.packed
    if kind in ("int48", "int128"):
        size = 6 if kind == "int48" else 16
        ends = [(v if isinstance(v, int) else int(str(v), 0)).to_bytes(size, "big") + b"\0" * (-size % 4)
                for v in (low, high)]
        return ends[0], ends[1]
    raise ValueError(kind)


def element_batch(commands: list[dict], sets: dict[str, tuple[str, tuple[str, ...], bool]]) -> bytes | None:
    """libnftables JSON ``add``/``delete element`` commands of our sets as one nf_tables batch, in order;
    None when a command is anything else (libnftables then sends them all).

    libnftables 1.0.6 fetches every element of an interval set into its cache before it changes one
    (29 ms per vif with 1000 vifs in our sets); the kernel needs only the element itself."""
    messages = [_message(NFNL_MSG_BATCH_BEGIN, 0, next(_SEQ), b"", res_id=NFNL_SUBSYS_NFTABLES)]
    for command in commands:
        seq = next(_SEQ)
        if len(command) != 1:
            return None
        (verb, body), = command.items()
        spec = body.get("element") if isinstance(body, dict) and len(body) == 1 else None
        if verb not in _VERBS or not isinstance(spec, dict) or spec.get("table") != "xenscripts" \
                or spec.get("name") not in sets or spec.get("family") not in FAMILIES:
            return None
        _decl, fields, interval = sets[spec["name"]]
        elements = b""
        for elem in spec["elem"]:
            items = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
            try:
                pairs = [_field(kind, item) for kind, item in zip(fields, items, strict=True)]
            except (ValueError, TypeError, KeyError, IndexError, OverflowError):
                return None
            first, last = b"".join(p[0] for p in pairs), b"".join(p[1] for p in pairs)
            element = attr(NLA_F_NESTED | NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, first))
            if interval and (verb == "add" or first != last):  # as nft sends them: a range's end, always on add
                element += attr(NLA_F_NESTED | NFTA_SET_ELEM_KEY_END, attr(NFTA_DATA_VALUE, last))
            elements += attr(NLA_F_NESTED | NFTA_LIST_ELEM, element)
        body_bytes = (_string(NFTA_SET_ELEM_LIST_TABLE, "xenscripts") + _string(NFTA_SET_ELEM_LIST_SET, spec["name"])
                      + attr(NLA_F_NESTED | NFTA_SET_ELEM_LIST_ELEMENTS, elements))
        flags = NLM_F_ACK | (NLM_F_CREATE if verb == "add" else 0)
        messages.append(_message(NFNL_SUBSYS_NFTABLES << 8 | _VERBS[verb], flags, seq, body_bytes,
                                 family=FAMILIES[spec["family"]]))
    messages.append(_message(NFNL_MSG_BATCH_END, 0, next(_SEQ), b"", res_id=NFNL_SUBSYS_NFTABLES))
    return b"".join(messages)


def _message(kind: int, flags: int, seq: int, body: bytes, family: int = 0, res_id: int = 0) -> bytes:
    """One nfnetlink request: nfgenmsg (*family*, *res_id*) then *body*."""
    return request(kind, flags, seq, struct.pack("=BBH", family, 0, socket.htons(res_id)) + body)


def send_batch(batch: bytes, sock: socket.socket | None = None) -> None:
    """One nf_tables transaction; OSError with the kernel's errno when it refused it (nothing applied)."""
    waiting = {seq_of(m) for kind, m in messages(batch) if kind >> 8 == NFNL_SUBSYS_NFTABLES}
    nl = netlink_socket() if sock is None else sock
    try:
        nl.send(batch)
        failure = 0
        while waiting:
            for kind, message in messages(nl.recv(65536)):
                seq = seq_of(message)
                if kind == NLMSG_ERROR and seq in waiting:  # each message's ack, or its error
                    waiting.discard(seq)
                    failure = failure or error_code(message)
        if failure:
            raise OSError(failure, os.strerror(failure))
    finally:
        if sock is None:
            nl.close()
