"""The venv our entry points run from: which Python made it, and whether that is still the host's."""

from __future__ import annotations

import os
import subprocess

HOST_PYTHON = "/usr/bin/python3"
OURS = ".xenscripts-venv"  # install made this venv (uninstall may remove it)


def venv_version(venv: str) -> str | None:
    """``major.minor`` of the Python that made *venv* (its ``pyvenv.cfg``), None without one."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return None


def python_version(python: str = HOST_PYTHON) -> str | None:
    """``major.minor`` of *python*, None when it does not run."""
    try:
        cp = subprocess.run([python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True, timeout=20, check=False,
                            stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return cp.stdout.strip() if cp.returncode == 0 else None


def venv_mismatch(venv: str, host_version: str | None) -> str | None:
    """Why *venv* cannot serve on this host (made by another Python), or None when it can."""
    made_by = venv_version(venv)
    if made_by is None:
        return f"{venv} is not a venv (no pyvenv.cfg)"
    if host_version is not None and made_by != host_version:
        return (f"{venv} was made by Python {made_by}, the host's python3 is {host_version}: "
                f"rebuild it with 'xenscripts install'")
    return None
