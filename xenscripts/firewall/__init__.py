"""The firewall layer every script goes through: per-vif rules and per-network rules.

This file is the interface the vif and network scripts call. The rule model
(``model``), the planner (``plan``), backend detection (``detect``), the
backends (``nft``, ``xtables``) and ``conntrack`` live in this package and
are imported only when a rule has to be written.

Two jobs: compat (upstream's FORWARD ACCEPT rules; on unless
``firewall=none``) and antispoof (``antispoof=yes``: only the guest's own
MAC, addresses, ARP and DHCP/ND leave its vif).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import HotplugError, InputError

BACKENDS = ("auto", "nft", "legacy", "none")
XTABLES_LOCK = "/run/xtables.lock"
UPSTREAM_FAILURE = "iptables setup failed. This may affect guest networking."
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# Names end up in iptables-restore batches and chain names: no quoting characters.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.@+=%-]{1,15}")


class Log(Protocol):
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


@dataclass(frozen=True)
class FirewallSettings:
    """Which backend writes rules (``auto|nft|legacy|none``) and whether antispoof is on."""

    backend: str = "auto"
    antispoof: bool = False
    dhcp_server: bool = False  # antispoof lets this guest answer DHCP/DHCPv6 clients (``dhcp_server=yes``)
    xtables_lock: str = XTABLES_LOCK  # XTABLES_LOCKFILE, as iptables itself honours it


@dataclass(frozen=True)
class VifFirewall:
    """One guest NIC as the firewall sees it."""

    dev: str                   # the vif's name in dom0 (after any rename)
    kind: str                  # "bridge", "route" or "nat"
    mac: str | None = None     # the guest's MAC (xenstore ``mac``)
    ips: tuple[str, ...] = ()  # the guest's addresses (xenstore ``ip``)
    bridge: str | None = None  # bridged vifs: the bridge it is a port of


def settings_from(variables: Mapping[str, str]) -> FirewallSettings:
    """FirewallSettings from merged variables (conf < env < argv < xenstore); bad values are errors."""
    backend = variables.get("firewall") or "auto"
    if backend not in BACKENDS:
        raise InputError(f"Invalid firewall {backend!r}: expected one of {', '.join(BACKENDS)}")
    antispoof = variables.get("antispoof") or "no"
    if antispoof not in ("yes", "no"):
        raise InputError(f"Invalid antispoof {antispoof!r}: expected yes or no")
    if backend == "none" and antispoof == "yes":
        raise InputError("antispoof=yes needs a firewall, but firewall=none")
    dhcp_server = variables.get("dhcp_server") or "no"
    if dhcp_server not in ("yes", "no"):
        raise InputError(f"Invalid dhcp_server {dhcp_server!r}: expected yes or no")
    return FirewallSettings(backend=backend, antispoof=antispoof == "yes", dhcp_server=dhcp_server == "yes",
                            xtables_lock=variables.get("XTABLES_LOCKFILE") or XTABLES_LOCK)


def choose_backend(settings: FirewallSettings, log: Log) -> str:
    """``nft``, ``legacy`` or ``none``: the setting, or what this host uses (logged)."""
    if settings.backend != "auto":
        return settings.backend
    from .detect import auto_backend
    backend, why = auto_backend()
    log.info(f"firewall: using {backend} ({why})")
    return backend


def _safe(name: str, what: str) -> str:
    if not _SAFE_NAME.fullmatch(name):
        raise InputError(f"Invalid {what} {name!r} for firewall rules: use letters, digits and _.@+=%-")
    return name


def update_vif_rules(vif: VifFirewall, plugging: bool, settings: FirewallSettings, log: Log,
                     pending: list[Callable[[], None]] | None = None) -> None:
    """Install (plugging) or remove every rule of *vif*; idempotent both ways.

    With *pending*, a slow step that is not a security boundary (nft hosts:
    the compat batch) may still be running on return; the caller runs what
    was appended to *pending* before it reports success or rolls back.
    """
    if settings.backend == "none":
        log.debug(f"firewall=none: no rules for {vif.dev}")
        return
    _safe(vif.dev, "vif name")
    if plugging and settings.antispoof and not vif.mac:
        raise InputError(f"antispoof=yes needs the guest's MAC address, and {vif.dev} has none")
    backend = choose_backend(settings, log)
    if backend == "nft":
        from .backend_nft import plug_vif, unplug_vif
    else:
        from .backend_legacy import plug_vif, unplug_vif
        if vif.kind == "bridge":
            warn_bridge_netfilter(log)
    if not plugging:
        unplug_vif(vif, settings, log)
    else:
        try:
            if backend == "nft":
                plug_vif(vif, settings, log, pending)
            else:
                plug_vif(vif, settings, log)
        except Exception:
            unplug_vif(vif, settings, log)  # never leave half a vif's rules behind
            raise
    forget_connections(vif, log)


def forget_connections(vif: VifFirewall, log: Log) -> None:
    """Flush the conntrack entries of the vif's addresses, so no old flow outlives the guest."""
    if not vif.ips:
        return
    from .conntrack import flush_addresses
    try:
        count = flush_addresses(vif.ips)
    except Exception as e:  # noqa: BLE001 - stale flows are worth a log line, not a failed hotplug
        log.debug(f"conntrack flush for {vif.dev} skipped: {e!r}")
        return
    if count:
        log.debug(f"conntrack: {count} entries of {' '.join(vif.ips)} flushed")


def warn_bridge_netfilter(log: Log) -> None:
    """Say so when bridged IPv4 will not cross iptables (legacy rules would then never match)."""
    try:
        with open(BRIDGE_NF, encoding="ascii") as f:
            on = f.read().strip() == "1"
    except OSError:
        on = False
    if not on:
        log.warning("bridged IPv4 does not reach iptables (net.bridge.bridge-nf-call-iptables is "
                 "not 1 or br_netfilter is not loaded): the legacy rules for bridge ports do nothing. "
                 "Run 'modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 "
                 "net.bridge.bridge-nf-call-ip6tables=1 net.bridge.bridge-nf-call-arptables=1', or use firewall=nft.")


def update_network_rules(kind: str, netdev: str, bridge: str | None, starting: bool,
                         settings: FirewallSettings, log: Log) -> None:
    """network-* start/stop: bridge antispoof (FORWARD DROP + accept from *netdev*) or NAT MASQUERADE.

    kind "bridge" does something only with antispoof=yes; *netdev* is the bridge's physical port.
    kind "nat" keeps exactly one MASQUERADE out of *netdev* while started.
    """
    if settings.backend == "none" or (kind == "bridge" and not settings.antispoof):
        return
    if kind not in ("bridge", "nat"):
        raise HotplugError(f"firewall: unknown network kind {kind!r}")
    _safe(netdev, "netdev")
    backend = choose_backend(settings, log)
    if backend == "nft":
        from .backend_nft import update_network
    else:
        from .backend_legacy import update_network
    update_network(kind, netdev, starting, settings, log)
