"""Pytest fixtures for the simulated xenstored (registered by tests/conftest.py)."""

from __future__ import annotations

import shutil
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
