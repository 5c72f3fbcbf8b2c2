"""How tests, the demo and the benchmarks start our scripts: the installed way."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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


def install_entry(name: str, path: Path, venv: Path | None = None) -> Path:
    """Install our entry file for *name* at *path* as install.sh does (source dir, venv filled in)."""
    text = (BIN / name).read_text().replace("@SRC@", str(REPO)).replace("@VENV@", str(venv or REPO / ".venv"))
    path.write_text(text)
    path.chmod(0o755)
    return path
