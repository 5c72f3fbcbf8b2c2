"""The thin client's one hand-off into the package: what it does here when hotplugd did not run the call.

``entry/client.py`` imports this module by name only (``IN_PROCESS``), so the
client itself stays standard library; everything below may load pyroute2.
"""

from __future__ import annotations

import sys

from ..core.request import Request, serving
from ..netlink.pyroute import lite
from . import run_command


def run(command: str, argv: list[str], env: dict[str, str], deadline: float | None) -> int:
    """Run *command* in this process (bounded by *deadline* when given) and return its exit status."""
    lite()  # a one-shot run loads only the pyroute2 it uses
    if deadline is None:
        return run_command(command, argv, env, sys.stderr, sys.stdout)
    with serving(Request(deadline)):
        return run_command(command, argv, env, sys.stderr, sys.stdout)


def report(argv: list[str], env: dict[str, str], message: str) -> int:
    """Report a failure of this call without running it: hotplug-error (vif scripts), logs, stderr."""
    from ..frame.vif import report_failure

    return report_failure(argv, env, sys.stderr, message)


def vif_setup_target(argv: list[str], env: dict[str, str]) -> tuple[str | None, list[str]]:
    """vif-setup's ``exec $script``: our command and its argv, or (None, the foreign program's argv)."""
    from .vif_setup import resolve

    return resolve(argv, env)
