"""The firewall layer every script goes through: per-vif rules and per-network rules.

May import: netlink, xen, entry, core (and nftables, iptc).

This file is the interface the vif and network scripts call. The types and
the backend interface are ``interface``; the rule model (``model``), the
planner (``plan``), backend detection (``detect``), the backends
(``backend_nft``, ``backend_legacy``), their executors (``libnft``,
``xtables``), the per-vif record (``record``) and ``conntrack`` are
imported only when a rule has to be written.

Two jobs: compat (upstream's FORWARD ACCEPT rules; on unless
``firewall=none``) and antispoof (``antispoof=yes``: only the guest's own
MAC, addresses, ARP and DHCP/ND leave its vif).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping

from ..core.errors import HotplugError, InputError, MissingComponent, describe
from . import record
from .interface import (
    BACKENDS,
    UPSTREAM_FAILURE,
    XTABLES_LOCK,
    Finish,
    FirewallBackend,
    FirewallSettings,
    Log,
    VifFirewall,
    VifRules,
)

__all__ = ["BACKENDS", "UPSTREAM_FAILURE", "XTABLES_LOCK", "FirewallBackend", "FirewallSettings", "Log",
           "VifFirewall", "VifRules", "missing_protection", "open_backend", "restore_protection", "settings_from",
           "update_network_rules", "update_vif_rules"]

BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# Names end up in iptables-restore batches, chain names and nft reads: no quoting characters.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.@+=%-]{1,15}")
Opener = Callable[[str, FirewallSettings], contextlib.AbstractContextManager[FirewallBackend]]


def settings_from(variables: Mapping[str, str]) -> FirewallSettings:
    """FirewallSettings from merged variables (conf < env < argv < xenstore); bad values are errors.

    ``state_dir`` (the host's, which the vif frame puts there) is where each vif's record is kept.
    """
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
                            xtables_lock=variables.get("XTABLES_LOCKFILE") or XTABLES_LOCK,
                            state_dir=variables.get("state_dir") or None)


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


@contextlib.contextmanager
def open_backend(name: str, settings: FirewallSettings) -> Iterator[FirewallBackend]:
    """The *name* backend (``nft`` or ``legacy``) with the executors that really send, for one run."""
    from .xtables import XtRestore
    if name == "nft":
        from .backend_nft import NftBackend
        from .libnft import session
        with session() as nft:
            yield NftBackend(nft, XtRestore("nft", settings.xtables_lock))
        return
    from .backend_legacy import LegacyBackend
    from .libnft import LazySession
    with LazySession() as nft:  # antispoof's tables: opened only if a vif has them
        yield LegacyBackend(XtRestore("legacy", settings.xtables_lock), nft)


def update_vif_rules(vif: VifFirewall, plugging: bool, settings: FirewallSettings, log: Log,
                     pending: list[Finish] | None = None, opener: Opener = open_backend) -> None:
    """Install (plugging) or remove every rule of *vif*; idempotent both ways.

    With ``settings.state_dir``, what online installed is remembered per vif: a
    re-online replaces exactly that, and offline removes it with the backend
    online used (``record``), holding the vif's record meanwhile.
    With *pending*, a slow step that is not a security boundary (nft hosts:
    the compat batch) may still be running on return; the caller runs what
    was appended to *pending* before it reports success or rolls back.
    """
    held = settings.state_dir if _SAFE_NAME.fullmatch(vif.dev) else None  # else refused below, or no rules
    with record.locked(held, vif.dev):
        _update_vif_rules(vif, plugging, settings, log, pending, opener)


def _update_vif_rules(vif: VifFirewall, plugging: bool, settings: FirewallSettings, log: Log,
                      pending: list[Finish] | None, opener: Opener) -> None:
    state_dir = settings.state_dir
    remembered = record.load(state_dir, vif.dev)
    if remembered is None and settings.backend == "none":
        log.debug(f"firewall=none: no rules for {vif.dev}")
        return
    _safe(vif.dev, "vif name")
    if not plugging:
        name = remembered[0] if remembered else choose_backend(settings, log)
        try:
            with opener(name, settings) as backend:
                backend.unplug_vif(vif, remembered[1] if remembered else None, log)
        except MissingComponent as e:  # without the tool no rule of ours can have been written here
            log.debug(f"firewall: {e}")
        record.forget(state_dir, vif.dev)
        forget_connections(vif, log)
        return
    if settings.antispoof and not vif.mac:
        raise InputError(f"antispoof=yes needs the guest's MAC address, and {vif.dev} has none")
    name = choose_backend(settings, log)
    before = remembered[1] if remembered else None
    if remembered and remembered[0] != name:  # the host changed backend: the old one's rules go first
        with opener(remembered[0], settings) as old:
            old.unplug_vif(vif, before, log)
        record.forget(state_dir, vif.dev)
        before = None
    if name == "none":
        log.debug(f"firewall=none: no rules for {vif.dev}")
        return
    if name == "legacy" and vif.kind == "bridge":
        warn_bridge_netfilter(log)
    rules = VifRules(vif, settings.antispoof, settings.dhcp_server and settings.antispoof)
    try:
        with opener(name, settings) as backend:
            try:
                backend.plug_vif(rules, before, log, pending)
            except Exception:
                backend.unplug_vif(vif, None, log)  # never leave half a vif's rules behind
                record.forget(state_dir, vif.dev)
                raise
    except MissingComponent as e:
        if settings.antispoof:  # never a guest that believes it is fenced in and is not
            raise MissingComponent(f"antispoof=yes cannot be set up: {e}") from None
        log.warning(str(e))  # compat rules only: upstream's scripts go on without them too
        log.error(UPSTREAM_FAILURE)
        return
    record.save(state_dir, name, rules)
    watching = sys.modules.get(f"{__name__}.monitor")  # imported by hotplugd only: its table watch
    if rules.antispoof and watching is not None:
        watching.noticed(state_dir)
    forget_connections(vif, log)


def missing_protection(state_dir: str, opener: Opener = open_backend) -> dict[str, list[str]]:
    """Per vif with a record: what of its rules the kernel does not hold (after ``nft flush ruleset``, say).

    Each is asked of the backend its online used; a vif whose rules are all there is left out.
    """
    out: dict[str, list[str]] = {}
    for backend, rules in record.remembered(state_dir):
        try:
            with opener(backend, FirewallSettings(backend=backend)) as fw:
                missing = fw.missing(rules)
        except HotplugError as e:
            missing = [f"the {backend} firewall cannot be read: {e}"]
        if missing:
            out[rules.vif.dev] = missing
    return out


def restore_protection(state_dir: str, log: Log, opener: Opener = open_backend) -> list[str]:
    """Put back what every record says a vif should have and the kernel lost; the vifs restored.

    Every vif is looked at before any is restored: a table written whole again for the first restores
    the others in it too, and they are named as well."""
    lost = []
    for backend, rules in record.remembered(state_dir):
        with opener(backend, FirewallSettings(backend=backend)) as fw:
            if fw.missing(rules):
                lost.append((backend, rules))
    restored = []
    for backend, rules in lost:
        with record.locked(state_dir, rules.vif.dev):
            if record.load(state_dir, rules.vif.dev) != (backend, rules):
                continue  # its offline (or a new online) came first
            with opener(backend, FirewallSettings(backend=backend)) as fw:
                fw.plug_vif(rules, rules, log)
        restored.append(rules.vif.dev)
    return restored


def forget_connections(vif: VifFirewall, log: Log) -> None:
    """Delete the conntrack entries of the vif's addresses (kernel-side), so no old flow outlives the guest."""
    if not vif.ips:
        return
    from .conntrack import flush_addresses
    try:
        count = flush_addresses(vif.ips)
    except Exception as e:  # noqa: BLE001 - stale flows are worth a log line, not a failed hotplug
        log.debug(f"conntrack flush for {vif.dev} skipped: {describe(e)}")
        return
    if count:
        log.debug(f"conntrack: entries naming {' '.join(vif.ips)} deleted")


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
                         settings: FirewallSettings, log: Log, opener: Opener = open_backend) -> None:
    """network-* start/stop: bridge antispoof (FORWARD DROP + accept from *netdev*) or NAT MASQUERADE.

    kind "bridge" does something only with antispoof=yes; *netdev* is the bridge's physical port.
    kind "nat" keeps exactly one MASQUERADE out of *netdev* while started.
    The FORWARD policy in force before the first network-bridge start is kept
    in ``settings.state_dir`` and put back by the stop of the last one.
    """
    if settings.backend == "none" or (kind == "bridge" and not settings.antispoof):
        return
    if kind not in ("bridge", "nat"):
        raise HotplugError(f"firewall: unknown network kind {kind!r}")
    _safe(netdev, "netdev")
    remembered = record.forward_policy(settings.state_dir) if kind == "bridge" else None
    with opener(choose_backend(settings, log), settings) as backend:
        before = backend.update_network(kind, netdev, starting, log, remembered)
    if kind != "bridge":
        return
    if starting and before is not None and remembered is None:
        record.save_forward_policy(settings.state_dir, before)
    elif not starting and before is not None:  # the last of our networks: the policy is the host's again
        record.forget_forward_policy(settings.state_dir)
