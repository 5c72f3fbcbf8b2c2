"""Pytest fixtures for the simulated xenstored (registered by tests/conftest.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from xensim.xenstored import XenstoreServer


@pytest.fixture
def xenstored(tmp_path: Path) -> Iterator[XenstoreServer]:
    """A started XenstoreServer on a socket unique to the test; stopped afterwards."""
    # Unix socket paths are limited to 107 bytes; tmp_path can be long.
    path = tmp_path / "xs.sock"
    short_dir = None
    if len(str(path)) > 100:
        short_dir = Path(tempfile.mkdtemp(prefix="xs-"))
        path = short_dir / "xs.sock"
    server = XenstoreServer(str(path)).start()
    try:
        yield server
    finally:
        server.stop()
        if short_dir is not None:
            shutil.rmtree(short_dir, ignore_errors=True)


_opened: list[str] | None = None  # while a test watches: every path this process opens
_hooked = False


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str):
        _opened.append(args[0])


@pytest.fixture
def opened_files() -> Iterator[list[str]]:
    """The paths this process opens during the test, seen by a ``sys.addaudithook`` hook (not by our code)."""
    global _opened, _hooked
    if not _hooked:
        sys.addaudithook(_audit)  # cannot be removed: it records only while a test holds the list
        _hooked = True
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None
