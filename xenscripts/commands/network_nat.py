"""network-nat: not built yet (its issue replaces this module)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Refuse: use upstream's script until this one lands."""
    if stderr is not None:
        stderr.write("network-nat: not implemented by xenscripts yet; use upstream's script\n")
    return 1
