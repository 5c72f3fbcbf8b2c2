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
import errno
import importlib.util
import os
import queue
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, Self

from ..core.errors import HotplugError, MissingComponent
from ..core.groupcommit import group
from .interface import NftObjects
from .nft_command import NftCommand, list_spec, nft_command

SYSTEM_BINDING = "/usr/lib/python3/dist-packages/nftables/__init__.py"
# ``get element <family> <table> <set> { "<ifname>" }``: one interface name in a set keyed by ifname
_IFNAME_GET = re.compile(r'get element (bridge|inet|arp|ip|ip6|netdev) ([A-Za-z0-9_-]+) ([A-Za-z0-9_-]+) '
                         r'\{ "([A-Za-z0-9_.@+=%-]{1,15})" \}')
_FAMILIES = {"ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10, "inet": 1}
NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFTA_NESTED = 10, 12, 13, 0x8000


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

    def holds(self, script: str) -> bool:
        one = _IFNAME_GET.fullmatch(script.strip())
        if one:  # is this vif in an ifname set? the kernel looks it up (nft would fetch every set's elements)
            found = kernel_has_ifname(*one.groups())
            if found is not None:
                return found
        rc, _out, _err = self.ctx.cmd(script)
        return rc == 0

    def list(self, what: str) -> NftObjects:
        """``list <what>`` as objects; concurrent runs in this namespace asking for the same share one
        listing started after all of them asked (``chain ip filter FORWARD`` holds every vif's jumps)."""
        return group(("nft-list", _netns_key(), what)).submit(None, partial(self._list_all, what))

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
    pool, key = _pool, _netns_key()
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

    def commit(self, commands: NftObjects) -> None:
        self._open().commit(commands)

    def commit_text(self, script: str) -> None:
        self._open().commit_text(script)


# Closing a libnftables context whose socket committed a deletion waits for the kernel to free the
# deleted objects (an RCU grace period: 8-25 ms here), and a commit made meanwhile waits too. So
# hotplugd keeps a context per network namespace for the next run there (``ContextPool``, installed
# by the daemon with ``use_pool``); one left idle for IDLE_CLOSE seconds is freed by the pool's own
# thread, off every run's path. A one-shot process has no pool: its exit pays, as it would anyway.
IDLE_CLOSE = 2.0


class ContextPool:
    """libnftables contexts kept per network namespace, each taken by one run at a time (not thread-safe)."""

    def __init__(self, idle_close: float = IDLE_CLOSE) -> None:
        self.idle_close = idle_close
        self._idle: dict[tuple[int, int], tuple[Nft, float]] = {}
        self._lock = threading.Lock()
        self._graveyard: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None

    def take(self, key: tuple[int, int]) -> Nft | None:
        with self._lock:
            found = self._idle.pop(key, None)
        return found[0] if found else None

    def give(self, key: tuple[int, int], nft: Nft) -> None:
        """Keep *nft* for the next run in *key*'s namespace (one per namespace; a spare is freed)."""
        with self._lock:
            spare = key in self._idle
            if not spare:
                self._idle[key] = (nft, time.monotonic())
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="nft-reaper", daemon=True)
                self._reaper.start()
        if spare:
            self._graveyard.put(nft.ctx)

    def _reap(self) -> None:
        while True:
            try:
                ctx = self._graveyard.get(timeout=self.idle_close / 2)
                del ctx  # Nftables.__del__ -> nft_ctx_free, here
            except queue.Empty:
                pass
            now = time.monotonic()
            with self._lock:
                idle = [key for key, (_nft, since) in self._idle.items() if now - since >= self.idle_close]
                freed = [self._idle.pop(key)[0] for key in idle]
            del freed  # their contexts go here, outside the lock


_pool: ContextPool | None = None


def use_pool(pool: ContextPool | None) -> None:
    """hotplugd's pool for every later ``session()`` in this process (None: a fresh context per run)."""
    global _pool
    _pool = pool


def _netns_key() -> tuple[int, int]:
    """This thread's network namespace (hotplugd threads join their caller's)."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def kernel_has_ifname(family: str, table: str, set_name: str, name: str) -> bool | None:
    """Whether the kernel's set holds the interface name *name* (an ``ifname``-keyed set): one
    NFT_MSG_GETSETELEM lookup in this thread's namespace, O(1) in a hash set; None when it cannot tell."""
    def attr(kind: int, payload: bytes) -> bytes:
        return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)

    key = attr(1, name.encode().ljust(16, b"\0"))  # NFTA_DATA_VALUE: IFNAMSIZ bytes
    element = attr(NFTA_NESTED | 1, attr(NFTA_NESTED | 1, key))  # NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { .. } }
    body = (struct.pack("=BBH", _FAMILIES[family], 0, 0) + attr(1, table.encode() + b"\0")
            + attr(2, set_name.encode() + b"\0") + attr(NFTA_NESTED | 3, element))
    message = struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM, 1, 1, 0) + body
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 12) as nl:  # NETLINK_NETFILTER
            nl.settimeout(2.0)
            nl.send(message)
            reply = nl.recv(65536)
    except OSError:
        return None
    if len(reply) < 16:
        return None
    kind = struct.unpack_from("=H", reply, 4)[0]
    if kind == 2:  # NLMSG_ERROR: 0 would be an ack, ENOENT: not there (nor the set, nor the table)
        error = -struct.unpack_from("=i", reply, 16)[0]
        return False if error == errno.ENOENT else None
    return True if kind == NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM else None  # the element, found
