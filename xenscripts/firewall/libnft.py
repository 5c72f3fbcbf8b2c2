"""The libnftables executor: one context per network namespace, reused, sending what a backend gives it.

JSON for everything that names a vif (a name is never parsed as nft syntax);
nft syntax only for our constant table definitions and for ``get element``
reads (libnftables 1.0.6 has no JSON ``get``; the names in them are checked
by the facade and quoted). Debian's ``python3-nftables`` is the binding;
when the venv cannot import it, it is loaded from dist-packages by path,
and without it the nft command stands in (``nft_command``).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import os
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, Self

from ..core.errors import HotplugError, MissingComponent
from ..core.groupcommit import group
from ..core.request import current
from .interface import NftObjects
from .nft_command import NftCommand, jumps_in, list_spec, nft_command
from .nftnl import element_batch, head_jumps, kernel_has_ifname, netlink_socket, rule_jumps, send_batch
from .tables import SETS

SYSTEM_BINDING = "/usr/lib/python3/dist-packages/nftables/__init__.py"
# ``get element <family> <table> <set> { "<ifname>" }``: one interface name in a set keyed by ifname
_IFNAME_GET = re.compile(r'get element (bridge|inet|arp|ip|ip6|netdev) ([A-Za-z0-9_-]+) ([A-Za-z0-9_-]+) '
                         r'\{ "([A-Za-z0-9_.@+=%-]{1,15})" \}')


_binding_lock = threading.Lock()


def binding() -> Any:
    """The ``nftables`` module (None when absent), loaded once: concurrent first callers wait for that load.

    Loaded by path, the module is in ``sys.modules`` before it has finished
    loading; without the lock another thread would take it half made
    (``module 'nftables' has no attribute 'Nftables'``)."""
    with _binding_lock:
        return _load_binding()


def _load_binding() -> Any:
    """The ``nftables`` module: the venv's, else Debian's python3-nftables by path; None when neither is there.

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
        return None
    loaded = sys.modules.get("nftables")
    if loaded is not None and getattr(loaded, "__file__", None) == path:
        return loaded
    spec = importlib.util.spec_from_file_location("nftables", path, submodule_search_locations=[os.path.dirname(path)])
    if spec is None or spec.loader is None:
        raise MissingComponent(f"cannot load the nftables Python binding from {path}: "
                               "'apt-get install --reinstall python3-nftables'")
    nftables = importlib.util.module_from_spec(spec)
    sys.modules["nftables"] = nftables
    try:
        spec.loader.exec_module(nftables)
    except BaseException:
        del sys.modules["nftables"]
        raise
    return nftables


class Nft:
    """One libnftables context, made in the calling thread (so in its network namespace): the NftExecutor."""

    degraded: str | None = None  # what the nft command, standing in, says is missing

    def __init__(self, binding: Any) -> None:
        self.ctx = binding.Nftables()
        self.ctx.set_handle_output(True)
        self._nl: socket.socket | None = None  # lookups and element batches (closing one waits: kept)

    def socket(self) -> socket.socket:
        """This context's own NETLINK_NETFILTER socket, for what goes around libnftables (nftnl)."""
        if self._nl is None:
            self._nl = netlink_socket()
        return self._nl

    def holds(self, script: str) -> bool:
        one = _IFNAME_GET.fullmatch(script.strip())
        if one:  # is this vif in an ifname set? the kernel looks it up (nft would fetch every set's elements)
            found = kernel_has_ifname(self.socket(), *one.groups())
            if found is not None:
                return found
        rc, _out, _err = self.ctx.cmd(script)
        return rc == 0

    def list(self, what: str) -> NftObjects:
        """``list <what>`` as objects; concurrent runs in this namespace asking for the same share one
        listing started after all of them asked (``chain ip filter FORWARD`` holds every vif's jumps)."""
        return group(("nft-list", _netns_key(), what)).submit(None, partial(self._list_all, what))

    def jumps(self, chain: str, targets: Sequence[str]) -> builtins.list[int]:
        """Handles of the rules of ``ip filter <chain>`` jumping to *targets*: the ones hotplugd noted when
        it put them there, each checked by one lookup in the kernel; else from a listing of the chain."""
        pool = _pool()
        noted = pool.recall(_netns_key(), chain, targets, self.socket()) if pool is not None else None
        if noted is not None:
            return noted
        return jumps_in(self.list(f"chain ip filter {chain}"), targets)

    def note_jumps(self, chain: str, target: str, count: int) -> None:
        """*count* rules jumping to *target* were just put at the top of ``ip filter <chain>``: hotplugd
        remembers their handles (one short read of the chain's head), so ``jumps`` need not list it."""
        pool = _pool()
        if pool is None:
            return
        dump = netlink_socket()  # left mid-dump: closed by the pool's reaper, off this run's path
        handles = head_jumps(dump, "ip", "filter", chain, target, count)
        pool.discard(dump)
        if handles is not None:
            pool.note(_netns_key(), chain, target, handles)

    def _list_all(self, what: str, items: builtins.list[None]) -> builtins.list[NftObjects | BaseException]:
        return [self._list_one(what)] * len(items)

    def _list_one(self, what: str) -> NftObjects:
        rc, out, _err = self.ctx.json_cmd({"nftables": [{"list": list_spec(what)}]})
        if rc != 0 or not out:
            return []
        return out.get("nftables", [])

    def commit(self, commands: NftObjects) -> None:
        """One transaction; concurrent runs' commits in this namespace go in one (group commit:
        an interval set's elements are fetched once per transaction, not once per vif)."""
        group(("nft-commit", _netns_key())).submit(commands, self._commit_all)

    def _commit_all(self, rounds: builtins.list[NftObjects]) -> builtins.list[None | BaseException]:
        """The round as one transaction; if refused, each alone, so each run gets its own answer."""
        if len(rounds) > 1:
            try:
                self._commit_one([command for commands in rounds for command in commands])
                return [None] * len(rounds)
            except HotplugError:
                pass
        results: builtins.list[None | BaseException] = []
        for commands in rounds:
            try:
                self._commit_one(commands)
                results.append(None)
            except HotplugError as e:
                results.append(e)
        return results

    def _commit_one(self, commands: NftObjects) -> None:
        batch = element_batch(commands, SETS)
        if batch is not None:  # only elements of our sets: straight to the kernel, no cache of whole sets
            try:
                send_batch(batch, self.socket())
            except OSError as e:
                raise HotplugError(f"nft: {e.strerror or e} (set elements of our tables)") from None
            return
        rc, _out, err = self.ctx.json_cmd({"nftables": commands})
        if rc != 0:
            raise HotplugError(f"nft: {err.strip() or 'the transaction was refused'}")

    def commit_text(self, script: str) -> None:
        rc, _out, err = self.ctx.cmd(script)
        if rc != 0:
            raise HotplugError(f"nft: {err.strip() or 'the transaction was refused'}")


@contextlib.contextmanager
def session() -> Iterator[Nft | NftCommand]:
    """A libnftables context for all the work of a run, reused by the next run in this namespace.

    Without python3-nftables, the nft command (a fork per transaction) is the executor.
    """
    loaded = binding()
    if loaded is None:
        yield nft_command()
        return
    pool, key = _pool(), _netns_key()
    nft = (pool.take(key) if pool is not None else None) or Nft(loaded)
    try:
        yield nft
    finally:
        if pool is not None:
            pool.give(key, nft)


class LazySession:
    """An NftExecutor whose context is taken from ``session()`` on first use (legacy hosts: only antispoof
    needs nf_tables); a host where libnftables cannot be loaded answers every use with HotplugError."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._nft: Nft | NftCommand | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _open(self) -> Nft | NftCommand:
        if self._nft is None:
            try:
                self._nft = self._stack.enter_context(session())
            except HotplugError:
                raise
            except Exception as e:  # noqa: BLE001 - no libnftables.so, an ABI mismatch: say so, as an error
                raise HotplugError(f"libnftables cannot be loaded ({e})") from None
        return self._nft

    def holds(self, script: str) -> bool:
        return self._open().holds(script)

    def list(self, what: str) -> NftObjects:
        return self._open().list(what)

    def jumps(self, chain: str, targets: Sequence[str]) -> builtins.list[int]:
        return self._open().jumps(chain, targets)

    def note_jumps(self, chain: str, target: str, count: int) -> None:
        self._open().note_jumps(chain, target, count)

    def commit(self, commands: NftObjects) -> None:
        self._open().commit(commands)

    def commit_text(self, script: str) -> None:
        self._open().commit_text(script)


# Closing a libnftables context whose socket committed a deletion waits for the kernel to free the
# deleted objects (an RCU grace period: 8-25 ms here), and a commit made meanwhile waits too. So
# hotplugd keeps a context per network namespace for the next run there (``ContextPool``: the daemon's,
# handed to each request it runs as ``Request.warm``); one left idle for IDLE_CLOSE seconds is freed by the pool's own
# thread, off every run's path. A one-shot process has no pool: its exit pays, as it would anyway.
IDLE_CLOSE = 2.0
PER_NAMESPACE = 16  # idle contexts kept per namespace: one per hotplugd worker that may run there
MAX_NOTED = 100_000  # jump handles remembered at most (a few MB)


class ContextPool:
    """libnftables contexts kept per network namespace, each taken by one run at a time (not thread-safe)."""

    def __init__(self, idle_close: float = IDLE_CLOSE) -> None:
        self.idle_close = idle_close
        self._idle: dict[tuple[int, int], builtins.list[tuple[Nft, float]]] = {}
        self._lock = threading.Lock()
        self._graveyard: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None
        self._jumps: dict[tuple[tuple[int, int], str, str], builtins.list[int]] = {}

    def note(self, key: tuple[int, int], chain: str, target: str, handles: builtins.list[int]) -> None:
        """The handles of the rules of ``ip filter <chain>`` in *key*'s namespace that jump to *target*."""
        with self._lock:
            if len(self._jumps) >= MAX_NOTED:  # namespaces gone with their vifs never offlined
                self._jumps.clear()
            self._jumps[(key, chain, target)] = handles

    def discard(self, thing: object) -> None:
        """Free *thing* (a socket, a context) in the reaper thread: closing them waits for the kernel."""
        self._graveyard.put(thing)
        self._start_reaper()

    def recall(self, key: tuple[int, int], chain: str, targets: Sequence[str],
               sock: socket.socket) -> builtins.list[int] | None:
        """The noted handles of the jumps to *targets* (forgotten now), if the kernel still holds every one
        of them as such; None when one is unknown or changed (a flushed table, a recycled namespace)."""
        with self._lock:
            noted = [self._jumps.pop((key, chain, target), None) for target in targets]
        handles: builtins.list[int] = []
        for target, found in zip(targets, noted, strict=True):
            if found is None or not all(rule_jumps(sock, "ip", "filter", chain, h, target) for h in found):
                return None
            handles += found
        return handles

    def take(self, key: tuple[int, int]) -> Nft | None:
        with self._lock:
            kept = self._idle.get(key)
            return kept.pop()[0] if kept else None

    def give(self, key: tuple[int, int], nft: Nft) -> None:
        """Keep *nft* for a next run in *key*'s namespace (as many as run there at once, up to PER_NAMESPACE)."""
        with self._lock:
            kept = self._idle.setdefault(key, [])
            spare = len(kept) >= PER_NAMESPACE
            if not spare:
                kept.append((nft, time.monotonic()))
        self._start_reaper()
        if spare:
            self._graveyard.put(nft)  # its context and socket are freed by the reaper, off the request's path

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="nft-reaper", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        while True:
            try:
                spare = self._graveyard.get(timeout=self.idle_close / 2)
                del spare  # Nftables.__del__ -> nft_ctx_free, and the socket's close, here
            except queue.Empty:
                pass
            now = time.monotonic()
            freed = []
            with self._lock:
                for key in list(self._idle):
                    kept = self._idle[key]
                    freed += [nft for nft, since in kept if now - since >= self.idle_close]
                    kept[:] = [(nft, since) for nft, since in kept if now - since < self.idle_close]
                    if not kept:
                        del self._idle[key]
            del freed  # their contexts go here, outside the lock


def _pool() -> ContextPool | None:
    """The pool hotplugd keeps for the request this thread runs (None: in-process, a context per run)."""
    warm = current().warm
    return warm if isinstance(warm, ContextPool) else None


def _netns_key() -> tuple[int, int]:
    """This thread's network namespace (hotplugd threads join their caller's)."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino
