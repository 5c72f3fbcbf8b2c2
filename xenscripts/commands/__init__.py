"""One module per entry point, each with ``run(argv, env, stderr, stdout) -> exit status``.

May import: frame and every layer below it; never daemon or admin.

The registry lives here, below both ``cli`` (in-process) and ``daemon``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TextIO

# Command name -> module under xenscripts.commands.  ``network`` is the Xen 2
# name of network-bridge that older recipes still call.
COMMANDS = {
    "vif-bridge": "vif_bridge",
    "vif-route": "vif_route",
    "vif-nat": "vif_nat",
    "vif-openvswitch": "vif_openvswitch",
    "vif-setup": "vif_setup",
    "network-bridge": "network_bridge",
    "network": "network_bridge",
    "network-route": "network_route",
    "network-nat": "network_nat",
}


HELP = ("--help", "-h")
VERSION = "--version"


def run_command(name: str, argv: list[str], env: Mapping[str, str], stderr: TextIO | None,
                stdout: TextIO | None = None) -> int:
    """Run the command called *name* (``vif-bridge``…) and return its exit status."""
    if name not in COMMANDS:
        if stderr is not None:
            stderr.write(f"{name}: unknown\n")
        return 1
    module = import_module(f"{__name__}.{COMMANDS[name]}")
    if any(a in HELP or a == VERSION for a in argv[1:]):
        return _help_or_version(name, module, argv, stdout or stderr)
    return module.run(argv, env, stderr, stdout)


def _help_or_version(name: str, module: object, argv: list[str], out: TextIO | None) -> int:
    """``--help``/``-h`` print the command's usage, ``--version`` its version; nothing runs."""
    from .. import __version__

    if any(a in HELP for a in argv[1:]):
        text = getattr(module, "USAGE", "") or f"usage: {name} COMMAND [key=value ...]"
        text = text.replace("{name}", name)
    else:
        text = f"{name} (xenscripts) {__version__}"
    if out is not None:
        out.write(text.rstrip("\n") + "\n")
        out.flush()
    return 0
