"""The firewall layer's types: what a backend is given, what it must do, and the executors it sends through.

A backend (nft, legacy, later OpenFlow) decides *what* to send; an executor
is the only thing that actually sends (libnftables, ``iptables-*-restore``). Backends get their executors from the caller, so unit
tests put a recorder in and read exactly what each backend sends, and a
batching executor (group commit) can be slotted in without touching a backend.
Every module of the package imports its types from here, and this imports
nothing of the package but the core errors.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

BACKENDS = ("auto", "nft", "legacy", "none")
XTABLES_LOCK = "/run/xtables.lock"
UPSTREAM_FAILURE = "iptables setup failed. This may affect guest networking."

Finish = Callable[[], None]  # waits for work an executor started; raises HotplugError if it failed


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
    dhcp_server: bool = False         # antispoof lets this guest answer DHCP/DHCPv6 clients (``dhcp_server=yes``)
    xtables_lock: str = XTABLES_LOCK  # XTABLES_LOCKFILE, as iptables itself honours it
    state_dir: str | None = None      # where each vif's record is kept (None: nothing remembered)


@dataclass(frozen=True)
class VifFirewall:
    """One guest NIC as the firewall sees it."""

    dev: str                   # the vif's name in dom0 (after any rename)
    kind: str                  # "bridge", "route" or "nat"
    mac: str | None = None     # the guest's MAC (xenstore ``mac``)
    ips: tuple[str, ...] = ()  # the guest's addresses (xenstore ``ip``)
    bridge: str | None = None  # bridged vifs: the bridge it is a port of


@dataclass(frozen=True)
class VifRules:
    """What one backend was asked to hold for a vif: the vif, whether antispoof was on, whether it may serve DHCP.

    ``plug_vif`` gets the previous one (or None) so it can replace exactly what
    was there; it is what the state file remembers between online and offline.
    """

    vif: VifFirewall
    antispoof: bool
    dhcp_server: bool = False


# ------------------------------------------------------------------ executors: the only things that send
NftObjects = list[dict]  # libnftables JSON commands or listed objects (a name: methods called `list` shadow it)


class NftExecutor(Protocol):
    """libnftables in the caller's network namespace (one context per run)."""

    def holds(self, script: str) -> bool:
        """Run read-only nft commands (``get element ...``); True when every one found what it asked for."""
        ...

    def list(self, what: str) -> NftObjects:
        """``nft -j list <what>`` (``table ip filter``, ``chain ip filter FORWARD``) as objects; [] when absent."""
        ...

    def jumps(self, chain: str, targets: Sequence[str]) -> builtins.list[int]:
        """The handles of the rules of ``ip filter <chain>`` that jump to one of *targets*."""
        ...

    def note_jumps(self, chain: str, target: str, count: int) -> None:
        """*count* rules jumping to *target* were just inserted at the top of ``ip filter <chain>``; an
        executor may remember their handles for ``jumps`` (checked against the kernel before use)."""
        ...

    def commit(self, commands: NftObjects) -> None:
        """One libnftables JSON transaction; HotplugError (nothing applied) when the kernel refuses it."""
        ...

    def commit_text(self, script: str) -> None:
        """One transaction written in nft syntax (our constant table definitions); HotplugError on failure."""
        ...


class XtExecutor(Protocol):
    """``iptables-<variant>-save`` / ``-restore --noflush`` (and ip6tables) in the caller's namespace."""

    variant: str  # "legacy" or "nft"

    def save(self, table: str, ipv6: bool) -> str:
        """The table in ``iptables-save`` form ("" when it does not exist)."""
        ...

    def restore(self, batch: str, ipv6: bool) -> Finish:
        """Start one atomic ``--noflush`` batch; the result waits for it (HotplugError if refused)."""
        ...


# ------------------------------------------------------------------ the backend interface
class FirewallBackend(Protocol):
    """One way of writing our rules. Every method is idempotent and sends nothing when all is so."""

    name: str

    def plug_vif(self, rules: VifRules, before: VifRules | None, log: Log,
                 pending: list[Finish] | None = None) -> None:
        """Make the kernel hold exactly *rules* for the vif, replacing what *before* allowed.

        With *pending*, a slow step that is not a security boundary may still be
        running on return: the caller runs what was appended before it reports.
        """
        ...

    def unplug_vif(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """Remove every rule of the vif (what *before* recorded, else whatever names it); True if any was there."""
        ...

    def missing(self, rules: VifRules) -> list[str]:
        """What of *rules* the kernel does not hold, in words (empty when all is there)."""
        ...

    def update_network(self, kind: str, netdev: str, starting: bool, log: Log,
                       restore_policy: str | None = None) -> str | None:
        """network-bridge's FORWARD policy and port chain, or network-nat's MASQUERADE; start or stop.

        network-bridge: starting returns the FORWARD policy in force before the
        first of our networks (None when one already was), to be given back as
        *restore_policy* by the stop of the last, which returns the policy it put back.
        """
        ...
