"""The libnftables executor: one context per network namespace, reused, sending what a backend gives it.

JSON for everything that names a vif (a name is never parsed as nft syntax);
nft syntax only for our constant table definitions and for ``get element``
reads (libnftables 1.0.6 has no JSON ``get``; the names in them are checked
by the facade and quoted). Debian's ``python3-nftables`` is the binding;
when the venv cannot import it, it is loaded from dist-packages by path,
and without it the nft command stands in (``nft_command``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..core.errors import HotplugError, MissingComponent
from .interface import NftObjects
from .nft_command import NftCommand, list_spec, nft_command

SYSTEM_BINDING = "/usr/lib/python3/dist-packages/nftables/__init__.py"


def _binding() -> Any:
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
    spec.loader.exec_module(nftables)
    return nftables


class Nft:
    """One libnftables context, made in the calling thread (so in its network namespace): the NftExecutor."""

    degraded: str | None = None  # what the nft command, standing in, says is missing

    def __init__(self, binding: Any) -> None:
        self.ctx = binding.Nftables()
        self.ctx.set_handle_output(True)

    def holds(self, script: str) -> bool:
        rc, _out, _err = self.ctx.cmd(script)
        return rc == 0

    def list(self, what: str) -> NftObjects:
        rc, out, _err = self.ctx.json_cmd({"nftables": [{"list": list_spec(what)}]})
        if rc != 0 or not out:
            return []
        return out.get("nftables", [])

    def commit(self, commands: NftObjects) -> None:
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
    binding = _binding()
    if binding is None:
        yield nft_command()
        return
    key = _netns_key()
    with _pool_lock:
        pooled = _pool.pop(key, None)  # taken, not shared: a context is not thread-safe
    nft = pooled[0] if pooled else Nft(binding)
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
