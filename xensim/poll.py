"""Bounded polling for tests: wait for state, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """True as soon as *condition()* holds, False once *timeout* seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def file_contains(path: Path, text: str = "", timeout: float = 10.0) -> bool:
    """Wait until *path* exists and holds *text*."""
    return wait_until(lambda: path.exists() and text in path.read_text(), timeout)
