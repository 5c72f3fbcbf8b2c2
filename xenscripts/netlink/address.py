"""Interface addresses for routed set-ups: dom0's own address, host (/32, /128) addresses on a vif."""

from __future__ import annotations

import ipaddress
from typing import Any

from .link import Link, Net, netlink_errors

AF_INET, AF_INET6 = 2, 10
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
RT_SCOPE_UNIVERSE = 0


def family_of(address: str) -> int:
    return AF_INET6 if ipaddress.ip_address(address).version == 6 else AF_INET


def _addresses(net: Net, link: Link, family: int) -> list[Any]:
    with netlink_errors(f"listing addresses of {link.name}"):
        return list(net.ipr.get_addr(index=link.index, family=family))


def primary_address(net: Net, link: Link, family: int = AF_INET) -> str | None:
    """The first primary, global address of *link* (upstream's ``ip -4 -o addr show primary``)."""
    for msg in _addresses(net, link, family):
        if msg["flags"] & IFA_F_SECONDARY or msg["scope"] != RT_SCOPE_UNIVERSE:
            continue
        return msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return None


def host_prefix(address: str) -> int:
    return 128 if family_of(address) == AF_INET6 else 32


def has_address(net: Net, link: Link, address: str, prefixlen: int) -> bool:
    for msg in _addresses(net, link, family_of(address)):
        local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if local == address and msg["prefixlen"] == prefixlen:
            return True
    return False


def ensure_host_address(net: Net, link: Link, address: str) -> bool:
    """*address* as a host address (/32 or /128, no DAD) on *link*; True if it was added."""
    prefixlen = host_prefix(address)
    if has_address(net, link, address, prefixlen):
        return False
    with netlink_errors(f"adding {address}/{prefixlen} to {link.name}"):
        if family_of(address) == AF_INET6:
            net.ipr.addr("add", index=link.index, address=address, prefixlen=prefixlen, flags=IFA_F_NODAD)
        else:
            net.ipr.addr("add", index=link.index, address=address, prefixlen=prefixlen)
    return True


def delete_host_address(net: Net, link: Link, address: str) -> bool:
    """Remove the host address *address* from *link*; True if it was there."""
    prefixlen = host_prefix(address)
    if not has_address(net, link, address, prefixlen):
        return False
    with netlink_errors(f"removing {address}/{prefixlen} from {link.name}"):
        net.ipr.addr("del", index=link.index, address=address, prefixlen=prefixlen)
    return True
