"""The legacy xtables backend: python-iptables (``iptc``) under the xtables lock, arptables-legacy.

libiptc takes no lock of its own and a concurrent writer makes a commit fail
with EAGAIN: every commit holds ``/run/xtables.lock`` (``XTABLES_LOCKFILE``),
with a bounded wait, and is retried on EAGAIN. ``iptc`` caches one handle per
table in the process, so all use is serialised and each table is refreshed
(re-read in the calling thread's network namespace) before it is changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import HotplugError, MissingComponent
from .detect import tool
from .model import XtRule, XtTable

XTABLES_LOCK = "/run/xtables.lock"
LOCK_WAIT = 10.0        # well under libxl's 40 s
COMMIT_TRIES = 5
ARPTABLES = "arptables-legacy"
_IPTC = threading.Lock()
_PROTOCOL_NAMES = {"ipv6-icmp": "icmpv6"}  # iptables-save's name -> python-iptables' name
_OPTS = {"-s": "src", "-d": "dst", "-i": "in_interface", "-o": "out_interface", "-p": "protocol"}


@contextlib.contextmanager
def xtables_lock(path: str = XTABLES_LOCK, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the lock iptables itself takes (``-w``), waiting at most *wait* seconds."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise HotplugError(f"Timed out after {wait:g} s waiting for the xtables lock {path}") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # releases the lock


def _iptc() -> Any:
    try:
        import iptc  # ~0.5 s: only when the legacy backend is used
    except ImportError as e:
        raise HotplugError(f"the legacy firewall needs python-iptables: {e}") from None
    return iptc


def build_rule(iptc: Any, words: tuple[str, ...], ipv6: bool) -> Any:
    """An iptc rule from ``iptables-save`` words (``-s a -m physdev --physdev-in x -j ACCEPT``)."""
    rule = iptc.Rule6() if ipv6 else iptc.Rule()
    match = None
    negate = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "!":
            negate = True
            i += 1
            continue
        bang = "!" if negate else ""
        negate = False
        if word in _OPTS:
            value = _PROTOCOL_NAMES.get(words[i + 1], words[i + 1]) if word == "-p" else words[i + 1]
            setattr(rule, _OPTS[word], bang + value)
            i += 2
        elif word == "-m":
            match = rule.create_match(words[i + 1])
            i += 2
        elif word == "-j":
            rule.create_target(words[i + 1])
            i += 2
        elif word.startswith("--") and match is not None:
            has_value = i + 1 < len(words) and not words[i + 1].startswith("-") and words[i + 1] != "!"
            match.set_parameter(word[2:], bang + (words[i + 1] if has_value else ""))
            i += 2 if has_value else 1
        else:
            raise ValueError(f"cannot translate {word!r} in {' '.join(words)!r}")
    return rule


def _table(iptc: Any, table: XtTable | str, ipv6: bool) -> Any:
    name = table if isinstance(table, str) else table.table
    t = iptc.Table6(name) if ipv6 else iptc.Table(name)
    t.autocommit = False
    t.refresh()
    return t


def _same(rule: Any, wanted: Any) -> bool:
    """Equal rules; targets by name only (ours carry no options, and iptc compares MASQUERADE's
    kernel-side buffer, which never equals a fresh one)."""
    return (rule.target.name == wanted.target.name and rule.src == wanted.src and rule.dst == wanted.dst
            and rule.protocol == wanted.protocol and rule.in_interface == wanted.in_interface
            and rule.out_interface == wanted.out_interface
            and sorted(map(_match_key, rule.matches)) == sorted(map(_match_key, wanted.matches)))


def _match_key(match: Any) -> tuple:
    return match.name, tuple(sorted(match.get_all_parameters().items()))


def _has(chain: Any, wanted: Any) -> bool:
    return any(_same(r, wanted) for r in chain.rules)


def _install(iptc: Any, spec: XtTable) -> None:
    t = _table(iptc, spec, spec.ipv6)
    fresh = bool(spec.chains)  # jumps go only to our chains: new chains cannot have jumps yet
    for name, rules in spec.chains.items():
        chain = iptc.Chain(t, name)
        if t.is_chain(name):
            chain.flush()
            fresh = False
        else:
            t.create_chain(name)
        for rule in rules:
            chain.append_rule(build_rule(iptc, rule.spec, spec.ipv6))
    for rule in reversed(spec.jumps):
        if fresh:  # skip decoding every rule of FORWARD/INPUT (thousands with many vifs)
            iptc.Chain(t, rule.chain).insert_rule(build_rule(iptc, rule.spec, spec.ipv6))
        else:
            _ensure(iptc, t, rule, spec.ipv6, top=True)
    for rule in spec.appends:
        _ensure(iptc, t, rule, spec.ipv6, top=False)
    for name, policy in spec.policies.items():
        iptc.Chain(t, name).set_policy(policy)
    t.commit()


def _ensure(iptc: Any, t: Any, rule: XtRule, ipv6: bool, top: bool) -> None:
    chain = iptc.Chain(t, rule.chain)
    built = build_rule(iptc, rule.spec, ipv6)
    if not _has(chain, built):
        chain.insert_rule(built) if top else chain.append_rule(built)


def _remove(iptc: Any, table: str, ipv6: bool, chains: list[str], hooks: tuple[str, ...],
            rules: list[XtRule], policies: dict[str, str]) -> bool:
    """Drop jumps from *hooks* into *chains*, the chains, and *rules*; True when anything changed."""
    t = _table(iptc, table, ipv6)
    changed = False
    for hook in hooks:
        chain = iptc.Chain(t, hook)
        for r in list(chain.rules):
            if r.target.name in chains:
                chain.delete_rule(r)
                changed = True
    for name in chains:
        if t.is_chain(name):
            iptc.Chain(t, name).flush()
            t.delete_chain(name)
            changed = True
    for rule in rules:
        chain = iptc.Chain(t, rule.chain)
        built = build_rule(iptc, rule.spec, ipv6)
        for r in list(chain.rules):
            if _same(r, built):
                chain.delete_rule(r)
                changed = True
    if changed:  # a policy is put back only when something of ours was there
        for name, policy in policies.items():
            iptc.Chain(t, name).set_policy(policy)
        t.commit()
    return changed


def _locked(lock_path: str, work: Any) -> Any:
    """Run *work(iptc)* under the process lock and the xtables lock, retrying a commit hit by EAGAIN."""
    iptc = _iptc()
    with _IPTC, xtables_lock(lock_path):
        for attempt in range(COMMIT_TRIES):
            try:
                return work(iptc)
            except iptc.IPTCError as e:
                if "temporarily unavailable" not in str(e) or attempt == COMMIT_TRIES - 1:
                    raise HotplugError(f"iptables (legacy): {e}") from None
                time.sleep(0.01 * (attempt + 1))
    return None


def install(tables: list[XtTable], lock_path: str = XTABLES_LOCK) -> None:
    """Install each table's chains (re-filled), jumps and appends (each once), one commit per table."""
    def work(iptc: Any) -> None:
        for spec in tables:
            _install(iptc, spec)
    _locked(lock_path, work)


def remove(table: str, ipv6: bool, chains: list[str], hooks: tuple[str, ...] = ("FORWARD", "INPUT"),
           rules: list[XtRule] | None = None, policies: dict[str, str] | None = None,
           lock_path: str = XTABLES_LOCK) -> bool:
    """Remove our chains (and the jumps to them) and exact *rules*; quiet when already gone."""
    return bool(_locked(lock_path, lambda iptc: _remove(iptc, table, ipv6, chains, hooks, rules or [],
                                                        policies or {})))


# ------------------------------------------------------------------ ARP (arptables-legacy)
def _arptables(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([tool(ARPTABLES), *args], check=False, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise MissingComponent(f"{ARPTABLES} is not installed (Debian package arptables): antispoof=yes on a "
                               "legacy xtables host needs it for ARP; 'apt-get install arptables', "
                               "or use firewall=nft") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HotplugError(f"{ARPTABLES} failed: {e}") from None


def _arp_jump_lines(hook: str, chain: str) -> list[int]:
    """Line numbers of *hook*'s rules jumping to *chain* (arptables-legacy has no -C nor -S)."""
    listing = _arptables("-L", hook, "-n", "--line-numbers")
    return [int(words[0]) for words in (line.split() for line in listing.stdout.splitlines())
            if len(words) >= 3 and words[0].isdigit() and words[1:3] == ["-j", chain]]


def install_arp(chain: str, rules: list[tuple[str, ...]], jumps: list[tuple[str, ...]], lock_path: str) -> None:
    """(Re)fill the vif's ARP chain and jump to it once from each hook."""
    with xtables_lock(lock_path):
        if _arptables("-N", chain).returncode != 0:
            _arptables("-F", chain)
        for rule in [*rules, *(("-I", *jump) for jump in jumps if not _arp_jump_lines(jump[0], chain))]:
            cp = _arptables(*rule)
            if cp.returncode != 0:
                raise HotplugError(f"{ARPTABLES} {' '.join(rule)} failed: {cp.stderr.strip()}")


def remove_arp(chain: str, lock_path: str) -> None:
    """Drop every rule jumping to the vif's ARP chain, then the chain (nothing to do without arptables)."""
    with xtables_lock(lock_path):
        try:
            for hook in ("INPUT", "FORWARD"):
                for number in sorted(_arp_jump_lines(hook, chain), reverse=True):
                    _arptables("-D", hook, str(number))
        except MissingComponent:
            return  # without arptables no ARP rule of ours can exist
        _arptables("-F", chain)
        _arptables("-X", chain)


def legacy_has_rules() -> bool:
    """True when legacy iptables tables hold any rule (a mixed host: legacy wins)."""
    try:
        cp = subprocess.run([tool("iptables-legacy-save")], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.startswith("-A ") for line in cp.stdout.splitlines())
