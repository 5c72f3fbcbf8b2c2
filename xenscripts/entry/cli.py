"""``python -m xenscripts NAME``: the entry files' command, found by the file's marker or its name."""

from __future__ import annotations

import os
import sys

from .entryfile import command_of_file


def command_name(argv: list[str]) -> str:
    """The command an argv asks for by its program's own name (``/etc/xen/scripts/vif-bridge``)."""
    return os.path.basename(argv[0]) if argv else ""


def _main(name: str) -> None:
    from .client import call

    status = call(name, list(sys.argv), dict(os.environ))
    sys.stdout.flush()
    sys.exit(status)


def main() -> None:
    """``python -m xenscripts NAME ARGS…``."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m xenscripts COMMAND [ARGS...]")
    sys.argv = sys.argv[1:]
    _main(command_of_file(sys.argv[0]) or command_name(sys.argv))
