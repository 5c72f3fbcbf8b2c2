"""Proxy neighbour (NDP) entries: dom0 answers neighbour solicitations for a routed guest's address."""

from __future__ import annotations

import errno

from ..core.errors import HotplugError
from .address import family_of
from .link import Link, Net, _netlink

NTF_PROXY = 0x08


def ensure_proxy_neighbour(net: Net, address: str, link: Link) -> None:
    """``ip neigh add proxy ADDRESS dev LINK`` (the kernel makes this idempotent)."""
    with _netlink(f"ip neigh add proxy {address} dev {link.name}"):
        net.ipr.neigh("add", dst=address, ifindex=link.index, flags=NTF_PROXY, family=family_of(address))


def delete_proxy_neighbour(net: Net, address: str, index: int) -> bool:
    """Remove the proxy entry for *address* on link *index*; False if there was none."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        net.ipr.neigh("del", dst=address, ifindex=index, flags=NTF_PROXY, family=family_of(address))
    except NetlinkError as e:
        if e.code in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
            return False
        raise HotplugError(f"ip neigh del proxy {address} failed: {e}") from None
    return True
