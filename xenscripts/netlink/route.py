"""Host routes to guests: ``ip route replace ADDR dev VIF [src S] metric M``, and their removal."""

from __future__ import annotations

import errno

from .address import AF_INET6, family_of, host_prefix
from .link import Link, Net, netlink_errors

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
    with netlink_errors(f"ip route replace {item} dev {link.name} metric {metric}"):
        net.ipr.route("replace", **spec)


def delete_host_route(net: Net, item: str, index: int, metric: int) -> bool:
    """Remove the route to *item* out of link *index* with *metric*; False if there was none."""
    address, prefixlen = split_address(item)
    absent = (errno.ESRCH, errno.ENODEV, errno.ENOENT)
    with netlink_errors(f"ip route del {item} metric {metric}", tolerate=absent) as did:
        net.ipr.route("del", dst=f"{address}/{prefixlen}", oif=index, priority=metric, family=family_of(address))
    return did.done
