"""A snapshot of one netdev as data: its link (``netlink.link.Link``), addresses (with flags and lifetimes), routes in every table.

The dataclasses are plain and pure (the planner and its golden files use
them without root); ``observe_netdev`` fills them over netlink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..netlink.link import Link, Links

FOREVER = 0xFFFFFFFF
AF_INET, AF_INET6 = 2, 10
RT_TABLE_LOCAL = 255
RTPROT_KERNEL = 2
RT_SCOPE_LINK = 253
IFA_F_SECONDARY = 0x01
# address flags a caller may set when adding (the rest are states the kernel keeps)
IFA_SETTABLE = 0x02 | 0x10 | 0x100 | 0x200 | 0x400  # nodad, home, mngtmpaddr, noprefixroute, autojoin


@dataclass(frozen=True)
class Address:
    """One address of a link."""

    family: int
    local: str
    prefixlen: int
    flags: int = 0
    scope: int = 0
    label: str | None = None      # IPv4 only: the interface label (``eth0:1``)
    peer: str | None = None       # point-to-point peer, when it differs from local
    broadcast: str | None = None
    valid: int = FOREVER          # remaining lifetimes in seconds (FOREVER = permanent)
    preferred: int = FOREVER

    @property
    def secondary(self) -> bool:
        return bool(self.flags & IFA_F_SECONDARY)

    @property
    def movable(self) -> bool:
        """Everything but IPv6 link-local addresses, which the kernel makes per link."""
        return not (self.family == AF_INET6 and self.scope == RT_SCOPE_LINK)

    def cidr(self) -> str:
        return f"{self.local}/{self.prefixlen}"


@dataclass(frozen=True)
class Route:
    """One route through a link, in any table."""

    family: int
    dst: str | None               # None: the default route
    dst_len: int
    table: int = 254
    gateway: str | None = None
    priority: int | None = None   # the metric
    proto: int = 3                # boot
    scope: int = 0
    type: int = 1                 # unicast
    prefsrc: str | None = None
    tos: int = 0

    @property
    def movable(self) -> bool:
        """Routes the kernel does not make by itself from addresses (local table, proto kernel)."""
        return self.table != RT_TABLE_LOCAL and self.proto != RTPROT_KERNEL

    def describe(self) -> str:
        words = [f"{self.dst}/{self.dst_len}" if self.dst else "default"]
        if self.gateway:
            words += ["via", self.gateway]
        if self.priority is not None:
            words += ["metric", str(self.priority)]
        if self.table != 254:
            words += ["table", str(self.table)]
        return " ".join(words)


@dataclass(frozen=True)
class NetdevState:
    """Everything network-bridge moves or restores for one netdev."""

    link: Link
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    slaves: tuple[str, ...] = ()  # bonding slaves (bond masters only)
    ports: tuple[str, ...] = ()   # bridge ports (bridges only)


def _attrs(msg: Any) -> dict[str, Any]:
    return dict(msg.get("attrs", []))


def address_from_msg(msg: Any) -> Address:
    attrs = _attrs(msg)
    local = attrs.get("IFA_LOCAL") or attrs.get("IFA_ADDRESS") or ""
    peer = attrs.get("IFA_ADDRESS")
    cache = attrs.get("IFA_CACHEINFO") or {}
    family = msg["family"]
    return Address(family=family, local=local, prefixlen=msg["prefixlen"],
                   flags=attrs.get("IFA_FLAGS", msg["flags"]), scope=msg["scope"],
                   label=attrs.get("IFA_LABEL") if family == AF_INET else None,
                   peer=peer if peer and peer != local else None, broadcast=attrs.get("IFA_BROADCAST"),
                   valid=cache.get("ifa_valid", FOREVER), preferred=cache.get("ifa_preferred", FOREVER))


def route_from_msg(msg: Any) -> Route:
    attrs = _attrs(msg)
    return Route(family=msg["family"], dst=attrs.get("RTA_DST"), dst_len=msg["dst_len"],
                 table=attrs.get("RTA_TABLE", msg["table"]), gateway=attrs.get("RTA_GATEWAY"),
                 priority=attrs.get("RTA_PRIORITY"), proto=msg["proto"], scope=msg["scope"],
                 type=msg["type"], prefsrc=attrs.get("RTA_PREFSRC"), tos=msg["tos"])


def observe_links(ipr: Any) -> Links:
    """Every link of the caller's namespace and the IPv4 default route's device."""
    links = Links.of(ipr.get_links())
    defaults = [(r.get_attr("RTA_PRIORITY") or 0, r.get_attr("RTA_OIF"))
                for r in ipr.get_routes(family=AF_INET, table=254)
                if r["dst_len"] == 0 and r.get_attr("RTA_OIF")]
    if defaults:
        links.default_dev = links.name_of(min(defaults)[1])
    return links


def observe_netdev(ipr: Any, links: Links, name: str) -> NetdevState:
    """The snapshot of link *name*: addresses, routes of every table, bonding slaves, bridge ports."""
    link = links.by_name[name]
    addresses = tuple(address_from_msg(m) for m in ipr.get_addr(index=link.index))
    routes = tuple(route_from_msg(m) for family in (AF_INET, AF_INET6)
                   for m in ipr.get_routes(family=family, table=None)
                   if m.get_attr("RTA_OIF") == link.index)
    dependents = tuple(links.ports_of(name))
    return NetdevState(link=link, addresses=addresses, routes=routes,
                       slaves=dependents if link.kind == "bond" else (),
                       ports=dependents if link.kind == "bridge" else ())
