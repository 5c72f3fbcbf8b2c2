"""The xtables executors: ``iptables-{legacy,nft}-save``/``-restore`` and ``arptables-legacy``, in the caller's namespace.

A batch is one ``--noflush`` restore: atomic (the kernel gets the table
whole, or nothing changes), serialised with every other xtables writer by
the xtables lock, which ``-w`` makes the tool take (``XTABLES_LOCKFILE``
moves it, as for iptables itself). arptables-legacy has no restore and its
``save`` is broken on Debian 12, so ARP goes one command at a time under
that same lock. Children inherit the calling thread's network namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator

from ..core.errors import HotplugError, MissingComponent
from .detect import tool
from .interface import XTABLES_LOCK, Finish

LOCK_WAIT = 10.0        # well under libxl's 40 s
RESTORE_TIMEOUT = 20.0
ARPTABLES = "arptables-legacy"


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


class Arptables:
    """arptables-legacy: the ArpExecutor that sends."""

    def __init__(self, lock_path: str = XTABLES_LOCK) -> None:
        self.lock_path = lock_path

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([tool(ARPTABLES), *args], check=False, capture_output=True, text=True,
                                  timeout=RESTORE_TIMEOUT)
        except FileNotFoundError:
            raise MissingComponent(f"{ARPTABLES} is not installed (Debian package arptables): antispoof=yes on a "
                                   "legacy xtables host needs it for ARP; 'apt-get install arptables', "
                                   "or use firewall=nft") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HotplugError(f"{ARPTABLES} failed: {e}") from None

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return xtables_lock(self.lock_path)

    def listing(self, chain: str) -> str | None:
        try:
            cp = self._run("-L", chain, "-n", "--line-numbers")
        except MissingComponent:
            return None  # without arptables no ARP rule of ours can exist

        return cp.stdout if cp.returncode == 0 else None

    def run(self, commands: list[tuple[str, ...]]) -> None:
        for command in commands:
            cp = self._run(*command)
            if cp.returncode != 0:
                raise HotplugError(f"{ARPTABLES} {' '.join(command)} failed: {cp.stderr.strip()}")
