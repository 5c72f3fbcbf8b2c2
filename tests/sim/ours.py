"""How tests, the demo and the benchmarks start our scripts: the installed way."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
UPSTREAM_DIR = Path("/etc/xen/scripts")


def our_command(name: str) -> list[str]:
    """argv prefix that runs our script *name* (``vif-bridge``…) as libxl would: by its path.

    Its ``#!/usr/bin/python3 -IS`` thin client forwards to hotplugd when one
    listens on ``XENSCRIPTS_SOCKET`` (daemon mode), else runs in-process.
    """
    return [str(BIN / name)]


def upstream_command(name: str) -> list[str]:
    """argv prefix that runs Debian's upstream script *name*."""
    return [str(UPSTREAM_DIR / name)]
