"""Validation of names, MACs, addresses and MTUs; errors name the bad value."""

from __future__ import annotations

import ipaddress
import re

from .errors import InputError

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_BAD_IFNAME_CHARS = re.compile(r"[/:\s]")
_DIGITS = re.compile(r"[0-9]+")
MTU_MIN = 68
MTU_MAX = 65535


def ifname(value: str, what: str = "interface name") -> str:
    """Return *value* if the kernel would accept it as a link name (dev_valid_name)."""
    raw = value.encode(errors="replace")
    if (
        not value
        or len(raw) > 15
        or b"\xa0" in raw  # the kernel's isspace() counts 0xa0 as a space
        or value in (".", "..")
        or _BAD_IFNAME_CHARS.search(value)
        or not value.isprintable()
    ):
        raise InputError(f"Invalid {what} {value!r}")
    return value


def mac(value: str, what: str = "MAC address") -> str:
    """Return *value* lower-cased if it is a unicast Ethernet address."""
    if not _MAC.fullmatch(value):
        raise InputError(f"Invalid {what} {value!r}")
    if int(value[:2], 16) & 1:
        raise InputError(f"Invalid {what} {value!r}: multicast addresses cannot be used")
    return value.lower()


def ip_list(value: str, what: str = "ip") -> list[str]:
    """Split a space-separated address list; each item is an address or a network."""
    items = value.split()
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InputError(f"Invalid IP address {item!r} in {what}") from None
    return items


def mtu(value: str, what: str = "MTU") -> int:
    """Return *value* as an int within the range Linux allows for Ethernet."""
    if not _DIGITS.fullmatch(value):
        raise InputError(f"Invalid {what} {value!r}")
    number = int(value)
    if not MTU_MIN <= number <= MTU_MAX:
        raise InputError(f"Invalid {what} {value!r}: must be {MTU_MIN}..{MTU_MAX}")
    return number
