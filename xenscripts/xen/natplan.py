"""vif-nat's addressing of a guest NIC: its address (the ``ip`` key, else upstream's 10.x scheme), router, DHCP name.

Pure: vif-nat configures what this says, and ``xenscripts check`` expects it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..core.errors import InputError


@dataclass(frozen=True)
class NatPlan:
    """The addresses and name of one NAT guest NIC."""

    guest: str      # the guest's address
    prefixlen: int  # its network's prefix length (DHCP netmask)
    router: str     # the address on its vif, its default gateway
    hostname: str


def default_guest_address(domid: int, vifid: int) -> str:
    """Upstream's scheme: ``10.<domid/256>.<domid%256>.<vifid>/16`` (vifid = handle + 1)."""
    return f"10.{domid // 256}.{domid % 256}.{vifid}/16"


def router_address(guest: str) -> str:
    """The guest's last octet +127 (upstream), or -127 when that would pass 254.

    Upstream adds 127 unconditionally, which gives 255 (a broadcast address
    in a /24) for .128 and invalid octets (256…382) above it.
    """
    octets = guest.split(".")
    last = int(octets[3])
    octets[3] = str(last + 127 if last <= 127 else last - 127)
    return ".".join(octets)


def hostname_for(domid: int, vifid: int) -> str:
    return f"dom{domid}" if vifid == 1 else f"dom{domid}-{vifid}"


def nat_plan(ip: list[str], domid: int, vifid: int) -> NatPlan:
    """The guest's address (first IPv4 item of ``ip``, else the 10.x scheme), router and hostname."""
    candidates = [item for item in ip if ":" not in item]
    item = candidates[0] if candidates else default_guest_address(domid, vifid)
    try:
        interface = ipaddress.IPv4Interface(item if "/" in item else f"{item}/16")
    except ValueError:
        raise InputError(f"Invalid guest address {item!r} (domid {domid}, vif {vifid})") from None
    guest = str(interface.ip)
    if interface.ip.packed[3] in (0, 255):
        raise InputError(f"Invalid guest address {guest}: the last octet must be 1..254")
    return NatPlan(guest=guest, prefixlen=interface.network.prefixlen, router=router_address(guest),
                   hostname=hostname_for(domid, vifid))
