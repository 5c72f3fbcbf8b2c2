"""Guest DHCP for NAT guests: dnsmasq (``dhcp=yes``) or ISC dhcpd (``dhcp=isc``).

May import: netlink, xen, entry, core.

``vif-nat`` adds and removes one fixed host entry per guest NIC;
``network-nat`` starts and stops the server side.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..core import validate
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


# What may stand unquoted in a shell assignment (dhcpd's arguments file is sourced by its init script):
# a link name may be ``$(reboot)``, which the kernel accepts and a shell would run.
_SHELL_WORD = re.compile(r"[A-Za-z0-9_.@%+=:,-]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOMAIN = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def shell_word(value: str, what: str) -> str:
    """*value* if it is one plain word to a shell (no quote, no ``$``, no blank); else InputError."""
    if not _SHELL_WORD.fullmatch(value):
        raise InputError(f"Invalid {what} {value!r} for dhcpd's arguments file (read as shell): "
                         "use letters, digits and _.@%+=:,-")
    return value


def checked(host: DhcpHost) -> DhcpHost:
    """*host* if every field is what dhcpd.conf and dnsmasq's hosts file can hold as written; else InputError."""
    if not _HOSTNAME.fullmatch(host.hostname):
        raise InputError(f"Invalid DHCP host name {host.hostname!r}")
    validate.mac(host.mac, "guest MAC address for DHCP")
    for what, value in (("address", host.address), ("router", host.router)):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise InputError(f"Invalid DHCP {what} {value!r}: expected an IPv4 address") from None
    return host


def domain_name(value: str | None) -> str | None:
    """*value* if it is a DNS name (what may go between dhcpd.conf's quotes), else None."""
    return value if value and _DOMAIN.fullmatch(value) else None


def ip_address(value: str | None) -> str | None:
    """*value* if it is an IP address, else None."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def dhcp_mode(variables: Mapping[str, str]) -> str:
    """``no`` (default), ``yes`` (dnsmasq) or ``isc`` (ISC dhcpd's config file)."""
    mode = variables.get("dhcp") or "no"
    if mode not in DHCP_MODES:
        raise InputError(f"Invalid dhcp={mode!r}: expected no, yes (dnsmasq) or isc (ISC dhcpd)")
    return mode
