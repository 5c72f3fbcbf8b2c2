"""The script directory's names: ours, upstream's, kept aside, or left by a package upgrade."""

from __future__ import annotations

import os

from ..entry.entryfile import is_entry_file
from .layout import DPKG_SUFFIXES, SAVED_SUFFIX, SCRIPT_NAMES


def is_ours(path: str) -> bool:
    """True when *path* is one of our entry files, or a symlink to one (the Debian package's)."""
    if os.path.islink(path) and os.readlink(path).endswith("xenscripts-run"):  # install.sh's old layout
        return True
    return is_entry_file(path)


def newer_upstream(target: str) -> str | None:
    """A ``.dpkg-new``/``.dpkg-dist`` file a package upgrade left beside *target*."""
    for suffix in DPKG_SUFFIXES:
        if os.path.isfile(target + suffix):
            return target + suffix
    return None


def script_dir_state(script_dir: str) -> list[dict[str, object]]:
    """Per name: who owns it (``ours``, ``upstream``, ``missing``), the kept copy, a package's newer file."""
    rows: list[dict[str, object]] = []
    for name in SCRIPT_NAMES:
        path = os.path.join(script_dir, name)
        owner = "ours" if is_ours(path) else ("upstream" if os.path.lexists(path) else "missing")
        rows.append({"name": name, "owner": owner,
                     "kept": os.path.lexists(path + SAVED_SUFFIX),
                     "dpkg_new": newer_upstream(path)})
    return rows
