"""The nftables backend: our own tables, one libnftables transaction per vif.

Antispoof is a constant set of rules per family (``table bridge xenscripts``
for bridge ports, ``table inet xenscripts`` for routed vifs) whose sets are
keyed by interface name: a vif only adds and removes set elements. compat
rules live in the host's ``ip filter FORWARD`` (iptables-nft), written with
one ``iptables-nft-restore --noflush -w`` batch and removed by rule handle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import HotplugError, MissingComponent
from . import detect
from .model import NftElement, XtTable, nft_json, nft_text

SYSTEM_BINDING = "/usr/lib/python3/dist-packages/nftables/__init__.py"
RESTORE_TIMEOUT = 20.0

_FROM_GUEST_IP = """\
	chain ip_from_guest {
		udp sport 67 udp dport 68 drop
		ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
		iifname . ip saddr != @ipv4 drop
		accept
	}
	chain ip6_from_guest {
		icmpv6 type { nd-router-advert, nd-redirect } drop
		udp sport 547 drop
		ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept
		iifname . ip6 saddr != @ipv6 drop
		accept
	}
"""
_SETS = """\
	set vifs { type ifname; }
	set macs { type ifname . ether_addr; }
	set ipv4 { type ifname . ipv4_addr; flags interval; }
	set ipv6 { type ifname . ipv6_addr; flags interval; }
"""
# Before conntrack (-200): a dropped frame never creates a connection.
_FROM_GUEST = """\
	chain from_guest {
		type filter hook prerouting priority -300; policy accept;
		iifname != @vifs accept
		iifname . ether saddr != @macs drop
"""
# Every table is created whole with ``create table`` first: a second creator fails atomically.
SCAFFOLDS = {
    "bridge": "create table bridge xenscripts\ntable bridge xenscripts {\n" + _SETS + _FROM_GUEST + """\
		ether type arp jump arp_from_guest
		ether type ip jump ip_from_guest
		ether type ip6 jump ip6_from_guest
		drop
	}
	chain arp_from_guest {
		iifname . arp saddr ether != @macs drop
		arp saddr ip 0.0.0.0 accept
		iifname . arp saddr ip != @ipv4 drop
		accept
	}
""" + _FROM_GUEST_IP + "}\n",
    "inet": "create table inet xenscripts\ntable inet xenscripts {\n" + _SETS + _FROM_GUEST + """\
		meta nfproto ipv4 jump ip_from_guest
		meta nfproto ipv6 jump ip6_from_guest
	}
""" + _FROM_GUEST_IP + "}\n",
    # routed vifs: the inet family does not see ARP, so ARP into dom0 gets its own table
    "arp": """create table arp xenscripts
table arp xenscripts {
	set vifs { type ifname; }
	set macs { type ifname . ether_addr; }
	set ipv4 { type ifname . ipv4_addr; flags interval; }
	chain from_guest {
		type filter hook input priority 0; policy accept;
		iifname != @vifs accept
		iifname . arp saddr ether != @macs drop
		arp saddr ip 0.0.0.0 accept
		iifname . arp saddr ip != @ipv4 drop
	}
}
""",
    "ip": """create table ip xenscripts
table ip xenscripts {
	set masquerade_out { type ifname; }
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @masquerade_out masquerade
	}
}
""",
}


def _binding() -> Any:
    """The ``nftables`` module: the venv's, else Debian's python3-nftables by path, else the nft command.

    ``XENSCRIPTS_NFTABLES_BINDING`` (tests only) names the by-path file instead
    and skips the import, so a test can hide the binding.
    """
    path = os.environ.get("XENSCRIPTS_NFTABLES_BINDING")
    if path is None:
        try:
            import nftables
            return nftables
        except ImportError:
            path = SYSTEM_BINDING
    if not os.path.isfile(path):
        from .nft_command import command_binding
        return command_binding()
    loaded = sys.modules.get("nftables")
    if loaded is not None and getattr(loaded, "__file__", None) == path:
        return loaded
    spec = importlib.util.spec_from_file_location("nftables", path,
                                                  submodule_search_locations=[os.path.dirname(path)])
    if spec is None or spec.loader is None:
        raise MissingComponent(f"cannot load the nftables Python binding from {path}: "
                               "'apt-get install --reinstall python3-nftables'")
    nftables = importlib.util.module_from_spec(spec)
    sys.modules["nftables"] = nftables
    spec.loader.exec_module(nftables)
    return nftables


class Nft:
    """One libnftables context, made in the calling thread (so in its network namespace)."""

    def __init__(self) -> None:
        binding = _binding()
        self.degraded: str | None = getattr(binding, "degraded", None)  # the nft command stands in
        self.ctx = binding.Nftables()
        self.ctx.set_handle_output(True)

    def run(self, text: str) -> tuple[int, str]:
        rc, _out, err = self.ctx.cmd(text)
        return rc, err.strip()

    def run_json(self, doc: dict) -> tuple[int, str]:
        rc, _out, err = self.ctx.json_cmd(doc)
        return rc, err.strip()

    def list_json(self, what: str) -> list[dict]:
        """``nft -j list <what>`` as a list of objects; empty when it does not exist."""
        rc, out, _err = self.ctx.json_cmd({"nftables": [{"list": _list_spec(what)}]})
        if rc != 0 or not out:
            return []
        return out.get("nftables", [])


@contextlib.contextmanager
def session(warn: Callable[[str], None] | None = None) -> Iterator[Nft]:
    """A libnftables context for all the work of a run, reused by the next run in this namespace.

    A new context made without the binding (the nft command stands in) says so through *warn*.
    """
    key = _netns_key()
    with _pool_lock:
        pooled = _pool.pop(key, None)  # taken, not shared: a context is not thread-safe
    nft = pooled[0] if pooled else Nft()
    if not pooled and nft.degraded and warn is not None:
        warn(nft.degraded)
    try:
        yield nft
    finally:
        with _pool_lock:
            spare = key in _pool  # another run returned one meanwhile: keep one per namespace
            if not spare:
                _pool[key] = (nft, time.monotonic())
        if spare:
            _release(nft.ctx)
        _start_reaper()


# Closing a libnftables context whose socket committed a deletion waits for the kernel to free the
# deleted objects (an RCU grace period: 8-25 ms here), and a commit made meanwhile waits too. So a
# context is kept per network namespace and reused by the next run there (a daemon serves many);
# one left idle for IDLE_CLOSE seconds is freed by a background thread, off every run's path. In
# a one-shot process the exit pays it, as it would anyway.
IDLE_CLOSE = 2.0
_pool: dict[tuple[int, int], tuple[Nft, float]] = {}
_pool_lock = threading.Lock()
_graveyard: queue.SimpleQueue = queue.SimpleQueue()
_reaper: list[threading.Thread] = []


def _netns_key() -> tuple[int, int]:
    """This thread's network namespace (hotplugd threads join their caller's)."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def _release(ctx: Any) -> None:
    _start_reaper()
    _graveyard.put(ctx)


def _start_reaper() -> None:
    with _pool_lock:
        if not _reaper:
            _reaper.append(threading.Thread(target=_reap, name="nft-reaper", daemon=True))
            _reaper[0].start()


def _reap() -> None:
    while True:
        try:
            ctx = _graveyard.get(timeout=IDLE_CLOSE / 2)
            del ctx  # Nftables.__del__ -> nft_ctx_free, here
        except queue.Empty:
            pass
        now = time.monotonic()
        with _pool_lock:
            idle = [key for key, (_nft, since) in _pool.items() if now - since >= IDLE_CLOSE]
            freed = [_pool.pop(key)[0] for key in idle]
        del freed  # their contexts go here, outside the lock


def _list_spec(what: str) -> dict:
    kind, family, *names = what.split()
    spec = {"family": family, "name" if kind == "table" else "table": names[0]}
    if kind == "chain":
        spec["name"] = names[1]
    return {kind: spec}


def add_elements(nft: Nft, elements: list[NftElement]) -> None:
    """Add *elements* in one transaction, creating our table the first time; re-adding is a no-op."""
    if not elements:
        return
    rc, err = nft.run_json(nft_json("add", elements))
    if rc == 0:
        return
    for family in sorted({e.family for e in elements}):
        nft.run(SCAFFOLDS[family])  # fails harmlessly when another run created it first
    rc, err = nft.run_json(nft_json("add", elements))
    if rc != 0:
        raise HotplugError(f"nft: cannot add {nft_text('add', elements).strip()!r}: {err}")


def delete_device_elements(nft: Nft, family: str, dev: str,
                           sets: tuple[str, ...] = ("vifs", "macs", "ipv4", "ipv6")) -> int:
    """Delete every element of our *family* table whose key names *dev*; return how many."""
    doomed = []
    for obj in nft.list_json(f"table {family} xenscripts"):
        s = obj.get("set")
        if not s or s.get("name") not in sets:
            continue
        for elem in s.get("elem", []):
            key = elem["elem"]["val"] if isinstance(elem, dict) and "elem" in elem else elem
            first = key["concat"][0] if isinstance(key, dict) and "concat" in key else key
            if first == dev:
                doomed.append({"delete": {"element": {"family": family, "table": "xenscripts",
                                                      "name": s["name"], "elem": [key]}}})
    if doomed:
        rc, err = nft.run_json({"nftables": doomed})
        if rc != 0:
            raise HotplugError(f"nft: cannot delete the set elements of {dev}: {err}")
    return len(doomed)


# ------------------------------------------------------------------ xtables rules on an nft host
def restore(table: XtTable, log_debug) -> None:
    """One ``iptables-nft-restore --noflush -w`` (or ip6tables-) batch; HotplugError on failure."""
    finish_restore(start_restore(table, log_debug))


def start_restore(table: XtTable, log_debug) -> tuple[str, subprocess.Popen]:
    """Start the batch and hand it its input; the caller does other work, then finish_restore()."""
    tool = "ip6tables-nft-restore" if table.ipv6 else "iptables-nft-restore"
    text = table.restore_text()
    log_debug(f"{tool} --noflush -w <<EOF\n{text}EOF")
    try:
        proc = subprocess.Popen([detect.tool(tool), "--noflush", "-w"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        with proc.stdin:
            proc.stdin.write(text)
        proc.stdin = None  # written and closed: communicate() must not touch it again
    except OSError as e:
        raise HotplugError(f"{tool} failed: {e}") from None
    return tool, proc


def finish_restore(job: tuple[str, subprocess.Popen]) -> None:
    """Wait for a started batch (bounded); HotplugError with its message if it failed."""
    tool, proc = job
    try:
        _, err = proc.communicate(timeout=RESTORE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise HotplugError(f"{tool} failed: no answer within {RESTORE_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise HotplugError(f"{tool} failed: {err.strip()}")


def chain_exists(nft: Nft, family: str, table: str, chain: str) -> bool:
    return any("chain" in obj for obj in nft.list_json(f"chain {family} {table} {chain}"))


def delete_chains(nft: Nft, family: str, table: str, chains: list[str], hooks: tuple[str, ...]) -> bool:
    """Delete the rules of *hooks* that jump to *chains*, then the chains; one transaction."""
    commands = []
    for hook in hooks:
        for obj in nft.list_json(f"chain {family} {table} {hook}"):
            rule = obj.get("rule")
            if rule and any(_jump_target(e) in chains for e in rule.get("expr", [])):
                commands.append({"delete": {"rule": {"family": family, "table": table, "chain": hook,
                                                     "handle": rule["handle"]}}})
    present = [c for c in chains if chain_exists(nft, family, table, c)]
    for chain in present:
        spec = {"family": family, "table": table, "name": chain}
        commands += [{"flush": {"chain": spec}}, {"delete": {"chain": spec}}]
    if not commands:
        return False
    rc, err = nft.run_json({"nftables": commands})
    if rc != 0:
        raise HotplugError(f"nft: cannot delete {', '.join(chains)}: {err}")
    return True


def _jump_target(expr: dict) -> str | None:
    for verb in ("jump", "goto"):
        if isinstance(expr, dict) and verb in expr:
            return expr[verb].get("target")
    return None


def set_forward_policy(policy: str) -> None:
    """The policy of iptables-nft's ``filter FORWARD`` (created if missing)."""
    restore(XtTable(policies={"FORWARD": policy}), lambda _m: None)
