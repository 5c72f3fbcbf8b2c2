"""Console entry points: each runs its command in-process and exits with its status."""

from __future__ import annotations

import os
import sys
from functools import partial

from .commands import run_command


def command_name(argv: list[str]) -> str:
    """The command an argv asks for: the program's own name (``/etc/xen/scripts/vif-bridge``)."""
    return os.path.basename(argv[0]) if argv else ""


def _main(name: str) -> None:
    argv = [name, *sys.argv[1:]] if command_name(sys.argv) != name else sys.argv
    sys.exit(run_command(name, argv, dict(os.environ), sys.stderr, sys.stdout))


# Console-script entry points (setup.cfg), one per command name.
vif_bridge = partial(_main, "vif-bridge")
vif_setup = partial(_main, "vif-setup")
vif_route = partial(_main, "vif-route")
vif_nat = partial(_main, "vif-nat")
network_bridge = partial(_main, "network-bridge")
network_route = partial(_main, "network-route")
network_nat = partial(_main, "network-nat")


def hotplugd() -> None:
    from .daemon import main

    main()


def main() -> None:
    """``python -m xenscripts NAME ARGS…``."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m xenscripts COMMAND [ARGS...]")
    sys.argv = sys.argv[1:]
    _main(command_name(sys.argv))
