"""Entry points below the installed files: ``python -m xenscripts NAME``, ``xenscripts-hotplugd``."""

from __future__ import annotations

import os
import sys

_ENTRY = b'"""xenscripts entry point for '  # then the command name and a colon (see bin/)


def command_name(argv: list[str]) -> str:
    """The command an argv asks for by its program's own name (``/etc/xen/scripts/vif-bridge``)."""
    return os.path.basename(argv[0]) if argv else ""


def command_of_file(path: str) -> str | None:
    """The command an installed entry file runs (whatever it is called), or None if not ours."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    at = head.find(_ENTRY)
    name = head[at + len(_ENTRY):].split(b":", 1)[0] if at >= 0 else b""
    return name.decode() if name and name.replace(b"-", b"").isalpha() else None


def _main(name: str) -> None:
    from .client import call

    status = call(name, list(sys.argv), dict(os.environ))
    sys.stdout.flush()
    sys.exit(status)


def hotplugd() -> None:
    from ..daemon.server import main

    main()


def main() -> None:
    """``python -m xenscripts NAME ARGS…``."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m xenscripts COMMAND [ARGS...]")
    sys.argv = sys.argv[1:]
    _main(command_of_file(sys.argv[0]) or command_name(sys.argv))
