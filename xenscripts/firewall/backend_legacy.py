"""Legacy xtables host: upstream's compat chains through python-iptables; antispoof in our nft tables.

Only the nft bridge family checks a bridged frame before the bridge learns
its source (ebtables-legacy has no filter table on this kernel, and
iptables sees a bridged frame only after learning, through br_netfilter):
antispoof is antispoof.py's, on a legacy host as on an nft host.
"""

from __future__ import annotations

from ..errors import HotplugError
from . import UPSTREAM_FAILURE, FirewallSettings, Log, VifFirewall, antispoof
from .detect import table_names_listed
from .plan import (
    compat_chain,
    legacy_vif_tables,
    network_bridge_rules,
    network_chain,
    network_nat_rules,
    spoof_chain,
)
from .xtables import install, remove, remove_arp


def plug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log) -> None:
    """Antispoof first (fatal on failure), then the vif's compat chain and jumps (logged on failure)."""
    if settings.antispoof:
        from .nft import session
        with session() as nft:
            antispoof.plug(nft, vif, settings, log, "legacy")
    try:
        install(legacy_vif_tables(vif.kind, vif.dev, vif.ips), settings.xtables_lock)
    except HotplugError as e:
        log.debug(str(e))
        log.error(UPSTREAM_FAILURE)


def unplug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log) -> None:
    """Every chain of the vif and every jump to it, in each legacy table this namespace has."""
    chains = [spoof_chain(vif.dev), compat_chain(vif.dev)]
    changed = False
    if table_names_listed("ip_tables_names"):  # never load a legacy table just to find it empty
        changed = remove("filter", False, chains, lock_path=settings.xtables_lock)
    if table_names_listed("ip6_tables_names"):
        changed |= remove("filter", True, chains[:1], lock_path=settings.xtables_lock)
    if table_names_listed("arp_tables_names"):  # what earlier versions wrote
        remove_arp(spoof_chain(vif.dev), settings.xtables_lock)
    changed |= _unplug_antispoof(vif) > 0
    if changed:
        log.debug(f"firewall: rules of {vif.dev} removed")


def _unplug_antispoof(vif: VifFirewall) -> int:
    """The vif's elements in our nft tables; nothing to do on a host where nf_tables is not usable."""
    from .nft import session
    try:
        with session() as nft:
            return antispoof.unplug(nft, vif)
    except HotplugError:  # no binding: no antispoof was ever written by it
        return 0


def update_network(kind: str, netdev: str, starting: bool, settings: FirewallSettings, log: Log) -> None:
    """network-nat's MASQUERADE, or network-bridge's FORWARD policy and port chain."""
    lock = settings.xtables_lock
    if kind == "nat":
        nat = network_nat_rules(netdev)
        if starting:
            install([nat], lock)
        else:
            remove("nat", False, [], hooks=(), rules=nat.appends, lock_path=lock)
        return
    if starting:
        install([network_bridge_rules(netdev)], lock)
    else:
        remove("filter", False, [network_chain(netdev)], hooks=("FORWARD",), policies={"FORWARD": "ACCEPT"},
               lock_path=lock)
