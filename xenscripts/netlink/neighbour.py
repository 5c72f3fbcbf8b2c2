"""Proxy neighbour (NDP) entries: dom0 answers neighbour solicitations for a routed guest's address."""

from __future__ import annotations

import errno

from .address import family_of
from .link import Link, Net, netlink_errors

NTF_PROXY = 0x08


def ensure_proxy_neighbour(net: Net, address: str, link: Link) -> None:
    """``ip neigh add proxy ADDRESS dev LINK`` (the kernel makes this idempotent)."""
    with netlink_errors(f"ip neigh add proxy {address} dev {link.name}"):
        net.ipr.neigh("add", dst=address, ifindex=link.index, flags=NTF_PROXY, family=family_of(address))


def delete_proxy_neighbour(net: Net, address: str, index: int) -> bool:
    """Remove the proxy entry for *address* on link *index*; False if there was none."""
    absent = (errno.ENOENT, errno.ENODEV, errno.ESRCH)
    with netlink_errors(f"ip neigh del proxy {address}", tolerate=absent) as did:
        net.ipr.neigh("del", dst=address, ifindex=index, flags=NTF_PROXY, family=family_of(address))
    return did.done
