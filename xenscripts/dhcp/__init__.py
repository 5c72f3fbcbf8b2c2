"""Guest DHCP for NAT guests: dnsmasq (``dhcp=yes``) or ISC dhcpd (``dhcp=isc``).

May import: netlink, xen, entry, core.

``vif-nat`` adds and removes one fixed host entry per guest NIC;
``network-nat`` starts and stops the server side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.errors import InputError

DHCP_MODES = ("no", "yes", "isc")
# The subnet upstream's network-nat declares for its 10.<domid/256>.<domid%256>.<vifid> scheme.
NAT_SUBNET = "10.0.0.0"
NAT_NETMASK = "255.255.0.0"


@dataclass(frozen=True)
class DhcpHost:
    """One guest NIC's fixed lease."""

    hostname: str   # dom<domid>[-<vifid>]
    mac: str
    address: str    # the guest's address
    router: str     # its router: the address on its vif


def dhcp_mode(variables: Mapping[str, str]) -> str:
    """``no`` (default), ``yes`` (dnsmasq) or ``isc`` (ISC dhcpd's config file)."""
    mode = variables.get("dhcp") or "no"
    if mode not in DHCP_MODES:
        raise InputError(f"Invalid dhcp={mode!r}: expected no, yes (dnsmasq) or isc (ISC dhcpd)")
    return mode
