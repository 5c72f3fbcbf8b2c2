"""Console entry points: each runs its command in-process and exits with its status."""

from __future__ import annotations

import os
import sys
from importlib import import_module

COMMANDS = {
    "vif-bridge": "vif_bridge",
    "vif-setup": "vif_setup",
}
NOT_YET = ("vif-route", "vif-nat", "network-bridge", "network-route", "network-nat")


def run_command(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Run the command called *name* (``vif-bridge``…) and return its exit status."""
    if name in NOT_YET:
        sys.stderr.write(f"{name}: not implemented by xenscripts yet; use upstream's script\n")
        return 1
    module = import_module(f"xenscripts.commands.{COMMANDS[name]}")
    return module.run(argv, env, sys.stderr)


def _main(name: str) -> None:
    sys.exit(run_command(name, sys.argv, dict(os.environ)))


def vif_bridge() -> None:
    _main("vif-bridge")


def vif_setup() -> None:
    _main("vif-setup")


def vif_route() -> None:
    _main("vif-route")


def vif_nat() -> None:
    _main("vif-nat")


def network_bridge() -> None:
    _main("network-bridge")


def network_route() -> None:
    _main("network-route")


def network_nat() -> None:
    _main("network-nat")


def main() -> None:
    """``python -m xenscripts NAME ARGS…`` or a symlink named after the command."""
    name = os.path.basename(sys.argv[0])
    if name not in COMMANDS and name not in NOT_YET and len(sys.argv) > 1:
        name = os.path.basename(sys.argv[1])
        sys.argv = sys.argv[1:]
    _main(name)
