"""Host-wide locks shared with upstream's shell scripts (``locking.sh``).

Same files (``/var/run/xen-hotplug/<name>``), same protocol: ``flock -x`` on
the file, then check that the open file is still the one at that path (the
holder removes the file on release). Unlike upstream, the wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import HotplugError

DEFAULT_LOCK_DIR = "/var/run/xen-hotplug"
DEFAULT_TIMEOUT = 30.0
_POLL = 0.01


@contextmanager
def hotplug_lock(name: str, lock_dir: str = DEFAULT_LOCK_DIR, timeout: float = DEFAULT_TIMEOUT,
                 prune: bool = False) -> Iterator[None]:
    """Hold the named lock for the ``with`` body; raise HotplugError after *timeout*.

    With *prune*, *lock_dir* itself goes too once no lock is left in it (it is made again by the next)."""
    path = os.path.join(lock_dir, name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # no directory yet, or another holder's release pruned it just now
            if time.monotonic() >= deadline:
                raise HotplugError(f"Timed out after {timeout:g} s waiting for lock {path}") from None
            with contextlib.suppress(FileExistsError):  # made, or pruned again, by another meanwhile
                os.makedirs(lock_dir, exist_ok=True)
            continue
        if flock_until(fd, deadline) and _same_file(fd, path):
            break
        os.close(fd)
        if time.monotonic() >= deadline:
            raise HotplugError(f"Timed out after {timeout:g} s waiting for lock {path}")
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
        if prune:
            with contextlib.suppress(OSError):  # not empty: another lock is held there
                os.rmdir(lock_dir)


def flock_until(fd: int, deadline: float, poll: float = _POLL) -> bool:
    """Take an exclusive flock on *fd*, polling until *deadline*."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)


def _same_file(fd: int, path: str) -> bool:
    """True if *path* still names the file open on *fd* (upstream's inode check)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)
