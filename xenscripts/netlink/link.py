"""Netlink appliers (pyroute2): small idempotent verbs on links and bridge ports.

The one link type (``Link``), a namespace's links by name (``Links``), the one
errno mapper (``netlink_errors``) and the one undo list (``Undo``). pyroute2
is imported when the first netlink socket is opened, never at module import,
so parsing and validation stay cheap.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from ..core.errors import DeviceGone, HotplugError
from .nlmsg import NETLINK_ROUTE, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, error_code, messages, request
from .rtnl import Rtnl, RtnlError

IFF_UP = 0x1
AF_INET6 = 10
RT_SCOPE_LINK = 253
_RTM_GETADDR, _RTM_NEWADDR = 22, 20
_SOL_NETLINK, _NETLINK_GET_STRICT_CHK = 270, 12
DUMMY_MAC = "fe:ff:ff:ff:ff:ff"


@dataclass(frozen=True)
class Link:
    """One network device as the kernel reports it (an ``RTM_NEWLINK`` message)."""

    index: int
    name: str
    mtu: int
    address: str                   # its MAC
    up: bool
    master: int | None             # the index of its bridge or bond, if any
    kind: str | None               # "bridge", "veth", "vlan"... (None for a plain NIC)
    altnames: tuple[str, ...] = ()
    alias: str | None = None       # IFLA_IFALIAS (network-bridge marks the VLAN devices it made)

    @property
    def is_bridge(self) -> bool:
        return self.kind == "bridge"


def link_from_msg(msg: Any) -> Link:
    props = msg.get("IFLA_PROP_LIST")
    altnames = tuple(v for k, v in (props or {}).get("attrs", []) if k == "IFLA_ALT_IFNAME") if props else ()
    return Link(
        index=msg["index"],
        name=msg.get("ifname"),
        mtu=msg.get("mtu"),
        address=msg.get("address") or "",
        up=bool(msg["flags"] & IFF_UP),
        master=msg.get("master") or None,
        kind=msg.get(("linkinfo", "kind")),
        altnames=altnames,
        alias=msg.get("ifalias"),
    )


@dataclass
class Links(Mapping[str, Link]):
    """A snapshot of every link of a namespace by name, from one dump (and, where asked, the default route's device).

    A read-only mapping name -> Link, with the questions that need the other links (whose port, which ports).
    """

    by_name: dict[str, Link] = field(default_factory=dict)
    default_dev: str | None = None
    by_index: dict[int, Link] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_index = {link.index: link for link in self.by_name.values()}

    @classmethod
    def of(cls, msgs: Any) -> Links:
        return cls({link.name: link for link in map(link_from_msg, msgs)})

    def __getitem__(self, name: str) -> Link:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def name_of(self, index: int | None) -> str | None:
        link = self.by_index.get(index) if index else None
        return link.name if link is not None else None

    def master_of(self, name: str) -> str | None:
        """The name of *name*'s bridge or bond, or None."""
        link = self.by_name.get(name)
        return self.name_of(link.master) if link is not None else None

    def ports_of(self, name: str) -> list[str]:
        """The links enslaved to *name*, sorted."""
        master = self.by_name.get(name)
        return sorted(n for n, link in self.by_name.items() if master is not None and link.master == master.index)

    def bridges(self) -> list[str]:
        return sorted(name for name, link in self.by_name.items() if link.is_bridge)


class Outcome:
    """What a guarded netlink request did: ``done`` is False when a tolerated errno said it was already so."""

    done = True


@contextmanager
def netlink_errors(what: str, tolerate: tuple[int, ...] = (), hints: Mapping[int, str] | None = None,
                   failed: str = " failed") -> Iterator[Outcome]:
    """The one NetlinkError mapper: an errno in *tolerate* is success (``done=False``), ENODEV is
    DeviceGone, one in *hints* a HotplugError with that explanation, any other a HotplugError naming *what*."""
    outcome = Outcome()
    try:
        yield outcome
    except Exception as e:
        code = _netlink_errno(e)
        if code is None:
            raise
        if code in tolerate:
            outcome.done = False
            return
        if hints and code in hints:
            raise HotplugError(f"{what}: {hints[code]}") from None
        if code == errno.ENODEV:
            raise DeviceGone(f"{what}: no such device") from None
        raise HotplugError(f"{what}{failed}: {e.args[1] if len(e.args) > 1 else e}") from None


def _netlink_errno(error: Exception) -> int | None:
    """The kernel's errno in a refused netlink request (ours, or pyroute2's NetlinkError); None for anything else."""
    if isinstance(error, RtnlError):
        return error.errno
    exceptions = sys.modules.get("pyroute2.netlink.exceptions")  # loaded by whatever pyroute2 call raised it
    if exceptions is not None and isinstance(error, exceptions.NetlinkError):
        return int(error.code)
    return None



class Net:
    """One netlink socket for one run, opened on first use."""

    def __init__(self) -> None:
        self._ipr: Any = None
        self._rtnl: Rtnl | None = None

    @property
    def rtnl(self) -> Rtnl:
        """A plain NETLINK_ROUTE socket for the hot verbs (one link asked or set)."""
        if self._rtnl is None:
            self._rtnl = Rtnl()
        return self._rtnl

    @property
    def ipr(self) -> Any:
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -----------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """The link called *name* (or with that altname), or None."""
        with netlink_errors(f"looking up {name}"):
            found = self.rtnl.get_link(name=name)
        return Link(**found) if found else None

    def link_by_index(self, index: int) -> Link | None:
        with netlink_errors(f"looking up link {index}"):
            found = self.rtnl.get_link(index=index)
        return Link(**found) if found else None

    def links(self) -> Links:
        """Every link of the namespace (a full dump: never on a per-request path that can avoid it)."""
        return Links.of(self.ipr.get_links())

    def first_bridge(self) -> str | None:
        """The bridge of the first bridge port, else the first bridge (upstream's discovery)."""
        links = self.links()
        for link in links.by_name.values():
            master = links.by_index.get(link.master) if link.master else None
            if master is not None and master.is_bridge:
                return master.name
        return next((link.name for link in links.by_name.values() if link.is_bridge), None)

    def bridge_names(self) -> list[str]:
        """Every bridge's name, sorted (for error messages: a full link dump)."""
        return self.links().bridges()

    def has_routable_addresses(self, index: int) -> bool:
        """True if link *index* has any address but an IPv6 link-local one.

        A raw RTM_GETADDR dump with NETLINK_GET_STRICT_CHK, so the kernel sends
        only this link's addresses: pyroute2 would fetch and decode every
        address in the namespace, which grows with the number of vifs.
        """
        return any(not (family == AF_INET6 and scope == RT_SCOPE_LINK)
                   for family, scope in _link_address_scopes(index))

    # -- verbs -------------------------------------------------------------
    def set_link(self, link: Link, *, master_name: str = "", **attrs: Any) -> None:
        """Set link attributes (state, address, mtu, master, ifname) in one request.

        *master_name* names the bridge whose index ``master`` is, for the error message."""
        shown = {**attrs, "master": master_name} if master_name and "master" in attrs else attrs
        with netlink_errors(f"setting {', '.join(f'{k}={v}' for k, v in shown.items())} on {link.name}"):
            self.rtnl.set_link(link.index, **attrs)

    def flush_addresses(self, link: Link) -> None:
        with netlink_errors(f"flushing addresses of {link.name}"):
            self.ipr.flush_addr(index=link.index)

    def add_altname(self, link: Link, altname: str) -> None:
        with netlink_errors(f"adding altname {altname} to {link.name}"):
            self.ipr.link("property_add", index=link.index, altname=altname)

    def del_altname(self, link: Link, altname: str) -> None:
        with netlink_errors(f"removing altname {altname} from {link.name}"):
            self.ipr.link("property_del", index=link.index, altname=altname)


def _link_address_scopes(index: int) -> list[tuple[int, int]]:
    """(family, scope) of each address of link *index*, from a kernel-filtered dump."""
    import socket
    import struct

    dump = request(_RTM_GETADDR, NLM_F_DUMP, 1, struct.pack("=BBBBI", 0, 0, 0, 0, index))  # struct ifaddrmsg
    found: list[tuple[int, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
        sock.send(dump)
        while True:
            data = sock.recv(65536)
            if not data or address_scopes(data, index, found):
                return found


def address_scopes(data: bytes, index: int, found: list[tuple[int, int]]) -> bool:
    """Append (family, scope) of link *index*'s addresses in one recv()'s messages; True at the dump's end."""
    import struct

    for kind, message in messages(data):
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            code = error_code(message)
            if code:
                raise HotplugError(f"listing addresses of link {index} failed: errno {code}")
            return True
        if kind == _RTM_NEWADDR:
            family, _plen, _flags, scope, ifindex = struct.unpack_from("=BBBBI", message, 16)
            if ifindex == index:
                found.append((family, scope))
    return False


class Undo:
    """Inverse actions recorded while configuring, replayed newest first on failure."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self._actions.append((what, action))

    def __len__(self) -> int:
        return len(self._actions)

    def rollback(self, log: Callable[[str], None]) -> None:
        """Run every inverse action; a failing one is logged and the rest still run."""
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as e:  # noqa: BLE001 - rollback must go on
                log(f"rollback: {what} failed: {e}")
