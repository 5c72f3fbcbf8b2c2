"""How tests, the demo and the benchmarks start our scripts: the installed way."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
UPSTREAM_DIR = Path("/etc/xen/scripts")


def our_command(name: str) -> list[str]:
    """argv prefix that runs our script *name* (``vif-bridge``…) as libxl would."""
    python = os.environ.get("XENSCRIPTS_TEST_PYTHON", sys.executable)
    return [python, str(BIN / name)]


def upstream_command(name: str) -> list[str]:
    """argv prefix that runs Debian's upstream script *name*."""
    return [str(UPSTREAM_DIR / name)]
