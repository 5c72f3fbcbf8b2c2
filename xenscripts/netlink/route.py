"""Host routes to guests: ``ip route replace ADDR dev VIF [src S] metric M``, and their removal."""

from __future__ import annotations

import errno

from ..core.errors import HotplugError
from .address import AF_INET6, family_of, host_prefix
from .link import Link, Net, _netlink

RT_SCOPE_LINK = 253
RTPROT_BOOT = 3  # what ``ip route add`` writes


def split_address(item: str) -> tuple[str, int]:
    """``10.0.0.5`` -> (``10.0.0.5``, 32); ``10.0.0.0/24`` -> (``10.0.0.0``, 24); v6 alike."""
    address, _, prefix = item.partition("/")
    return address, int(prefix) if prefix else host_prefix(address)


def replace_host_route(net: Net, item: str, link: Link, src: str | None, metric: int) -> None:
    """Route *item* (an address or network) out of *link*; replaces any route with the same key."""
    address, prefixlen = split_address(item)
    spec = {"dst": f"{address}/{prefixlen}", "oif": link.index, "priority": metric,
            "proto": RTPROT_BOOT, "family": family_of(address)}
    if spec["family"] != AF_INET6:
        spec["scope"] = RT_SCOPE_LINK
    if src:
        spec["prefsrc"] = src
    with _netlink(f"ip route replace {item} dev {link.name} metric {metric}"):
        net.ipr.route("replace", **spec)


def delete_host_route(net: Net, item: str, index: int, metric: int) -> bool:
    """Remove the route to *item* out of link *index* with *metric*; False if there was none."""
    from pyroute2.netlink.exceptions import NetlinkError

    address, prefixlen = split_address(item)
    try:
        net.ipr.route("del", dst=f"{address}/{prefixlen}", oif=index, priority=metric, family=family_of(address))
    except NetlinkError as e:
        if e.code in (errno.ESRCH, errno.ENODEV, errno.ENOENT):
            return False
        raise HotplugError(f"ip route del {item} metric {metric} failed: {e}") from None
    return True
