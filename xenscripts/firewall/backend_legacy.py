"""Legacy xtables host: per-vif chains through python-iptables, ARP through arptables-legacy."""

from __future__ import annotations

from ..core.errors import HotplugError
from . import UPSTREAM_FAILURE, FirewallSettings, Log, VifFirewall
from .detect import table_names_listed
from .plan import (
    arp_jumps,
    arp_rules,
    compat_chain,
    legacy_vif_tables,
    network_bridge_rules,
    network_chain,
    network_nat_rules,
    spoof_chain,
)
from .xtables import install, install_arp, remove, remove_arp


def plug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log) -> None:
    """The vif's chains and jumps (one commit per table), then its ARP chain; compat failures are logged."""
    tables = legacy_vif_tables(vif.kind, vif.dev, vif.mac, vif.ips, compat=True, antispoof=settings.antispoof)
    try:
        install(tables, settings.xtables_lock)
    except HotplugError as e:
        if settings.antispoof:
            raise
        log.debug(str(e))
        log.error(UPSTREAM_FAILURE)
        return
    if settings.antispoof:
        assert vif.mac is not None
        install_arp(spoof_chain(vif.dev), arp_rules(vif.dev, vif.mac, vif.ips),
                    arp_jumps(vif.kind, vif.dev, vif.mac), settings.xtables_lock)


def unplug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log) -> None:
    """Every chain of the vif and every jump to it, in each legacy table this namespace has."""
    chains = [spoof_chain(vif.dev), compat_chain(vif.dev)]
    changed = False
    if table_names_listed("ip_tables_names"):  # never load a legacy table just to find it empty
        changed = remove("filter", False, chains, lock_path=settings.xtables_lock)
    if table_names_listed("ip6_tables_names"):
        changed |= remove("filter", True, chains[:1], lock_path=settings.xtables_lock)
    if table_names_listed("arp_tables_names"):
        remove_arp(spoof_chain(vif.dev), settings.xtables_lock)
    if changed:
        log.debug(f"firewall: rules of {vif.dev} removed")


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
