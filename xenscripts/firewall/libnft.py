"""The libnftables executor: one context per network namespace, reused, sending what a backend gives it.

JSON for everything that names a vif (a name is never parsed as nft syntax);
nft syntax only for our constant table definitions and for ``get element``
reads (libnftables 1.0.6 has no JSON ``get``; the names in them are checked
by the facade and quoted). Debian's ``python3-nftables`` is the binding;
when the venv cannot import it, it is loaded from dist-packages by path.
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

from ..core.errors import HotplugError

SYSTEM_BINDING = "/usr/lib/python3/dist-packages/nftables/__init__.py"


_binding_lock = threading.Lock()
_binding_module: list[Any] = []


def binding() -> Any:
    """The ``nftables`` module, loaded once: concurrent first callers wait for the one load.

    Loaded by path, the module is in ``sys.modules`` before it has finished
    loading; another thread's plain import would see it half made."""
    if _binding_module:
        return _binding_module[0]
    with _binding_lock:
        if not _binding_module:
            _binding_module.append(_load_binding())
    return _binding_module[0]


def _load_binding() -> Any:
    """The ``nftables`` module: the venv's, else Debian's python3-nftables loaded by path."""
    try:
        import nftables
    except ImportError:
        spec = importlib.util.spec_from_file_location("nftables", SYSTEM_BINDING,
                                                      submodule_search_locations=[SYSTEM_BINDING.rsplit("/", 1)[0]])
        if spec is None or spec.loader is None:
            raise HotplugError("the nftables Python binding (python3-nftables) is not installed") from None
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

    def __init__(self) -> None:
        self.ctx = binding().Nftables()
        self.ctx.set_handle_output(True)

    def holds(self, script: str) -> bool:
        rc, _out, _err = self.ctx.cmd(script)
        return rc == 0

    def list(self, what: str) -> list[dict]:
        rc, out, _err = self.ctx.json_cmd({"nftables": [{"list": _list_spec(what)}]})
        if rc != 0 or not out:
            return []
        return out.get("nftables", [])

    def commit(self, commands: list[dict]) -> None:
        rc, _out, err = self.ctx.json_cmd({"nftables": commands})
        if rc != 0:
            raise HotplugError(f"nft: {err.strip() or 'the transaction was refused'}")

    def commit_text(self, script: str) -> None:
        rc, _out, err = self.ctx.cmd(script)
        if rc != 0:
            raise HotplugError(f"nft: {err.strip() or 'the transaction was refused'}")


@contextlib.contextmanager
def session() -> Iterator[Nft]:
    """A libnftables context for all the work of a run, reused by the next run in this namespace."""
    key = _netns_key()
    with _pool_lock:
        pooled = _pool.pop(key, None)  # taken, not shared: a context is not thread-safe
    nft = pooled[0] if pooled else Nft()
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
