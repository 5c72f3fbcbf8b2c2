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

from ..core.errors import HotplugError
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
    """iptables-save/-restore of one variant (``legacy`` or ``nft``): the XtExecutor that sends."""

    def __init__(self, variant: str, lock_path: str = XTABLES_LOCK) -> None:
        self.variant = variant
        self.env = {**os.environ, "XTABLES_LOCKFILE": lock_path}

    def _tool(self, ipv6: bool, verb: str) -> str:
        return tool(f"{'ip6tables' if ipv6 else 'iptables'}-{self.variant}-{verb}")

    def save(self, table: str, ipv6: bool) -> str:
        try:
            cp = subprocess.run([self._tool(ipv6, "save"), "-t", table], capture_output=True, text=True,
                                timeout=RESTORE_TIMEOUT, env=self.env, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HotplugError(f"{self._tool(ipv6, 'save')} failed: {e}") from None
        return cp.stdout if cp.returncode == 0 else ""

    def restore(self, batch: str, ipv6: bool) -> Finish:
        name = self._tool(ipv6, "restore")
        try:
            proc = subprocess.Popen([name, "--noflush", "-w", f"{LOCK_WAIT:g}"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)
            assert proc.stdin is not None
            with proc.stdin:
                proc.stdin.write(batch)
            proc.stdin = None  # written and closed: communicate() must not touch it again
        except OSError as e:
            raise HotplugError(f"{name} failed: {e}") from None

        def finish() -> None:
            try:
                _, err = proc.communicate(timeout=RESTORE_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise HotplugError(f"{name} failed: no answer within {RESTORE_TIMEOUT:g} s") from None
            if proc.returncode != 0:
                raise HotplugError(f"{name} failed: {err.strip()}")
        return finish
