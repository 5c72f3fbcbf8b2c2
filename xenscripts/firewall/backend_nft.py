"""nftables host: antispoof as elements of our own sets, compat via iptables-nft into ``ip filter FORWARD``."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import HotplugError, MissingComponent
from . import UPSTREAM_FAILURE, FirewallSettings, Log, VifFirewall
from .nft import (
    add_elements,
    chain_exists,
    delete_chains,
    delete_device_elements,
    finish_restore,
    restore,
    session,
    set_forward_policy,
    start_restore,
)
from .plan import (
    compat_chain,
    compat_rules,
    network_bridge_rules,
    network_chain,
    nft_families,
    nft_nat_element,
    nft_vif_elements,
)


def plug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log,
             pending: list[Callable[[], None]] | None = None) -> None:
    """Antispoof elements first (atomic, fatal on failure), then upstream's compat rules (logged on failure).

    The compat batch is a child process that spends most of its time in the
    kernel's commit; with *pending*, the caller gets the wait and does its
    other work meanwhile.
    """
    try:
        with session(log.warning) as nft:
            if settings.antispoof:
                assert vif.mac is not None
                add_elements(nft, nft_vif_elements(vif.kind, vif.dev, vif.mac, vif.ips))
            try:
                if chain_exists(nft, "ip", "filter", compat_chain(vif.dev)):
                    return
                job = start_restore(compat_rules(vif.kind, vif.dev, vif.ips), log.debug)
            except HotplugError as e:
                _compat_failed(e, log)
                return
    except MissingComponent as e:
        if settings.antispoof:  # never a guest that believes it is fenced in and is not
            raise MissingComponent(f"antispoof=yes cannot be set up: {e}") from None
        log.warning(str(e))
        _compat_failed(e, log)
        return

    def finish() -> None:
        try:
            finish_restore(job)
        except HotplugError as e:
            _compat_failed(e, log)

    if pending is None:
        finish()
    else:
        pending.append(finish)


def _compat_failed(error: HotplugError, log: Log) -> None:
    """Upstream carries on without its FORWARD rules when iptables fails; so do we, saying so."""
    log.debug(str(error))
    log.error(UPSTREAM_FAILURE)


def unplug_vif(vif: VifFirewall, settings: FirewallSettings, log: Log) -> None:
    """Remove every element naming the vif and its compat chain with the jumps to it."""
    try:
        with session(log.warning) as nft:
            count = sum(delete_device_elements(nft, family, vif.dev) for family in nft_families(vif.kind))
            if delete_chains(nft, "ip", "filter", [compat_chain(vif.dev)], ("FORWARD",)) or count:
                log.debug(f"firewall: rules of {vif.dev} removed")
    except MissingComponent as e:  # without nft no rule of ours can have been written here
        log.debug(f"firewall: {e}")


def update_network(kind: str, netdev: str, starting: bool, settings: FirewallSettings, log: Log) -> None:
    """network-nat's element of ``masquerade_out``, or network-bridge's FORWARD policy and port chain."""
    with session(log.warning) as nft:
        if kind == "nat":
            if starting:
                add_elements(nft, [nft_nat_element(netdev)])
            else:
                delete_device_elements(nft, "ip", netdev, ("masquerade_out",))
        elif starting:
            if not chain_exists(nft, "ip", "filter", network_chain(netdev)):
                restore(network_bridge_rules(netdev), log.debug)
        elif delete_chains(nft, "ip", "filter", [network_chain(netdev)], ("FORWARD",)):
            set_forward_policy("ACCEPT")
