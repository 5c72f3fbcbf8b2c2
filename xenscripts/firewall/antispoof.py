"""Antispoof for both backends: elements of our nft tables (tables.py), one transaction per vif.

A bridged frame can be checked before the bridge learns its source only at
the bridge's own hooks, which only nf_tables (the nft bridge family) offers
on this kernel; so a legacy host gets the same tables as an nft host, and
keeps upstream's compat rules in iptables-legacy. Without a usable
nf_tables, ``antispoof=yes`` refuses to plug: never a weaker policy.
"""

from __future__ import annotations

from ..errors import HotplugError
from . import FirewallSettings, Log, VifFirewall
from .nft import Nft, add_elements, delete_device_elements
from .plan import nft_families, nft_vif_elements

REFUSED = ("antispoof=yes needs the kernel's nf_tables (the nft {family} family: "
           "the only place a guest's frames are checked before the bridge learns from them), "
           "and it is not usable here: {why}. Not plugging {dev} with a weaker policy; "
           "load nf_tables or set antispoof=no.")


def plug(nft: Nft, vif: VifFirewall, settings: FirewallSettings, log: Log, backend: str) -> None:
    """Add the vif's elements (its MAC, addresses, neighbour discovery fields); HotplugError refuses."""
    assert vif.mac is not None
    elements = nft_vif_elements(vif.kind, vif.dev, vif.mac, vif.ips, settings.dhcp_server)
    family = nft_families(vif.kind)[0]
    try:
        add_elements(nft, elements)
    except HotplugError as e:
        raise HotplugError(REFUSED.format(family=family, why=e, dev=vif.dev)) from None
    log.debug(f"firewall: antispoof of {vif.dev} in nft table {family} xenscripts ({backend} host)"
              + (", may serve DHCP" if settings.dhcp_server else ""))


def unplug(nft: Nft, vif: VifFirewall) -> int:
    """Delete every element naming the vif in our tables; how many there were."""
    return sum(delete_device_elements(nft, family, vif.dev) for family in nft_families(vif.kind))
