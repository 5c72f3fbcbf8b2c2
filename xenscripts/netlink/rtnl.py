"""One link asked and changed over a plain NETLINK_ROUTE socket: the vif scripts' hot path without pyroute2.

A vif's online asks for its link and its bridge and sets a handful of
attributes; through pyroute2 each of those is an asyncio round and a full
decode of every attribute the kernel sends (statistics included), which
under a boot storm was the largest share of hotplugd's CPU. Here a request
is one ``send``, a reply one ``recv``, and a link is parsed for the fields
``Link`` has (statistics not even asked for). Standard library only.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from .nlmsg import NETLINK_ROUTE, NLM_F_ACK, NLMSG_ERROR, attr, attrs, error_code, messages, request

RTM_NEWLINK, RTM_GETLINK = 16, 18
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 10, 18, 20
IFLA_EXT_MASK, IFLA_PROP_LIST, IFLA_ALT_IFNAME, IFLA_INFO_KIND = 29, 52, 53, 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
TIMEOUT = 5.0


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is its error)."""


def _text(payload: bytes | memoryview) -> str:
    return bytes(payload).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_link(message: bytes | memoryview) -> dict:
    """The fields of ``netlink.link.Link`` from one RTM_NEWLINK message (header included)."""
    _family, _type, index, flags, _change = _IFINFO.unpack_from(message, 16)
    out: dict = {"index": index, "up": bool(flags & IFF_UP), "name": None, "mtu": None, "address": "",
                 "master": None, "kind": None, "altnames": (), "alias": None}
    for kind, payload in attrs(message, 16 + _IFINFO.size):
        if kind == IFLA_IFNAME:
            out["name"] = _text(payload)
        elif kind == IFLA_MTU:
            out["mtu"] = struct.unpack_from("=I", payload)[0]
        elif kind == IFLA_ADDRESS:
            out["address"] = ":".join(f"{b:02x}" for b in bytes(payload))
        elif kind == IFLA_MASTER:
            out["master"] = struct.unpack_from("=I", payload)[0] or None
        elif kind == IFLA_IFALIAS:
            out["alias"] = _text(payload) or None
        elif kind == IFLA_LINKINFO:
            out["kind"] = next((_text(p) for k, p in attrs(payload) if k == IFLA_INFO_KIND), None)
        elif kind == IFLA_PROP_LIST:
            out["altnames"] = tuple(_text(p) for k, p in attrs(payload) if k == IFLA_ALT_IFNAME)
    return out


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


class Rtnl:
    """One NETLINK_ROUTE socket in the calling thread's network namespace (hotplugd: the caller's)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.settimeout(TIMEOUT)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _ask(self, kind: int, flags: int, body: bytes) -> bytes | None:
        """Send one request; the reply message (None for a bare ACK). RtnlError when the kernel refuses."""
        self.seq += 1
        self.sock.send(request(kind, flags, self.seq, body))
        while True:
            for mtype, message in messages(self.sock.recv(65536), self.seq):  # skips a timed-out request's answer
                if mtype == NLMSG_ERROR:
                    code = error_code(message)
                    if code:
                        raise RtnlError(code, os.strerror(code))
                    return None
                return message

    def get_link(self, name: str | None = None, index: int = 0) -> dict | None:
        """The link called *name* (or with that altname) or with *index*; None when there is none."""
        body = _IFINFO.pack(0, 0, index, 0, 0) + attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
        if name is not None:
            body += attr(IFLA_IFNAME, name.encode() + b"\0")
        try:
            message = self._ask(RTM_GETLINK, 0, body)
        except RtnlError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return parse_link(message) if message is not None else None

    def set_link(self, index: int, *, state: str | None = None, master: int | None = None, mtu: int | None = None,
                 address: str | None = None, ifname: str | None = None) -> None:
        """Change link *index* in one RTM_NEWLINK: up/down, bridge (0: none), MTU, MAC, name."""
        if state not in ("up", "down", None):
            raise ValueError(f"state {state!r}")
        flags, change = (IFF_UP if state == "up" else 0), (IFF_UP if state else 0)
        body = _IFINFO.pack(0, 0, index, flags, change)
        if master is not None:
            body += attr(IFLA_MASTER, struct.pack("=I", master))
        if mtu is not None:
            body += attr(IFLA_MTU, struct.pack("=I", mtu))
        if address is not None:
            body += attr(IFLA_ADDRESS, _mac(address))
        if ifname is not None:
            body += attr(IFLA_IFNAME, ifname.encode() + b"\0")
        self._ask(RTM_NEWLINK, NLM_F_ACK, body)
