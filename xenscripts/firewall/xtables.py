"""The xtables executors: ``iptables-{legacy,nft}-save``/``-restore``, in the caller's namespace.

A batch is one ``--noflush`` restore: atomic (the kernel gets the table
whole, or nothing changes), serialised with every other xtables writer by
the xtables lock, which ``-w`` makes the tool take (``XTABLES_LOCKFILE``
moves it, as for iptables itself). Children inherit the calling thread's
network namespace.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial

from ..core.errors import HotplugError
from ..core.groupcommit import group, netns_key
from ..core.lock import flock_until
from .detect import tool
from .interface import XTABLES_LOCK, Finish

LOCK_WAIT = 10.0        # well under libxl's 40 s
RESTORE_TIMEOUT = 20.0


@contextlib.contextmanager
def xtables_lock(path: str = XTABLES_LOCK, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the lock iptables itself takes (``-w``), waiting at most *wait* seconds."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        if not flock_until(fd, time.monotonic() + wait, poll=0.005):
            raise HotplugError(f"Timed out after {wait:g} s waiting for the xtables lock {path}")
        yield
    finally:
        os.close(fd)  # releases the lock


class XtRestore:
    """iptables-save/-restore of one variant (``legacy`` or ``nft``): the XtExecutor that sends.

    Group commit (``core.groupcommit``): the batches of concurrent runs in one
    namespace go to one ``--noflush`` restore (if it is refused, each batch is
    sent alone, so each run gets its own answer), and concurrent reads of a
    table share one ``-save`` started after all of them asked."""

    def __init__(self, variant: str, lock_path: str = XTABLES_LOCK) -> None:
        self.variant = variant
        self.lock_path = lock_path
        self.env = {**os.environ, "XTABLES_LOCKFILE": lock_path}

    def _tool(self, ipv6: bool, verb: str) -> str:
        return tool(f"{'ip6tables' if ipv6 else 'iptables'}-{self.variant}-{verb}")

    def save(self, table: str, ipv6: bool) -> str:
        name = self._tool(ipv6, "save")
        key = ("save", netns_key(), name, table, self.lock_path)
        return group(key).submit(None, partial(_save_all, name, table, self.env))

    def restore(self, batch: str, ipv6: bool) -> Finish:
        name = self._tool(ipv6, "restore")
        key = ("restore", netns_key(), name, batch.split("\n", 1)[0], self.lock_path)
        return partial(group(key).submit, batch, partial(_restore_all, name, self.env))


def _save_all(name: str, table: str, env: dict[str, str], items: list[None]) -> list[str | BaseException]:
    """One ``-save`` for every caller of the round."""
    try:
        cp = subprocess.run([name, "-t", table], capture_output=True, text=True,
                            timeout=RESTORE_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [HotplugError(f"{name} failed: {e}")] * len(items)
    return [cp.stdout if cp.returncode == 0 else ""] * len(items)


def _restore_all(name: str, env: dict[str, str], batches: list[str]) -> list[None | BaseException]:
    """The round's batches (one table) as one restore; if refused, each alone for its own answer."""
    if len(batches) > 1:
        lines = [line for b in batches for line in b.splitlines()[1:-1]]  # without *table and COMMIT
        try:
            _restore(name, env, "\n".join([batches[0].split("\n", 1)[0], *lines, "COMMIT"]) + "\n")
            return [None] * len(batches)
        except HotplugError:
            pass
    results: list[None | BaseException] = []
    for b in batches:
        try:
            _restore(name, env, b)
            results.append(None)
        except HotplugError as e:
            results.append(e)
    return results


def _restore(name: str, env: dict[str, str], batch: str) -> None:
    """One atomic ``--noflush`` batch; HotplugError (with the tool's words) when it is refused."""
    try:
        cp = subprocess.run([name, "--noflush", "-w", f"{LOCK_WAIT:g}"], input=batch, capture_output=True,
                            text=True, env=env, timeout=RESTORE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise HotplugError(f"{name} failed: no answer within {RESTORE_TIMEOUT:g} s") from None
    except OSError as e:
        raise HotplugError(f"{name} failed: {e}") from None
    if cp.returncode != 0:
        raise HotplugError(f"{name} failed: {cp.stderr.strip()}")
