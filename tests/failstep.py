"""Test seam for network-bridge: run it in-process with the plan's step N failing before it runs.

``python tests/failstep.py N network-bridge ARGS...``. Production code has no
failure switch; this wraps the applier the command builds (``failing_at``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xenscripts.core.errors import HotplugError
from xenscripts.netbridge import apply


def failing_at(number: int, applier: Any) -> Any:
    """*applier*, whose *number*-th step (counted from 1, undo steps included) raises instead of running."""
    real_run, calls = applier.run, [0]

    def run(step: Any) -> Any:
        calls[0] += 1
        if calls[0] == number:
            raise HotplugError("injected failure (test seam)")
        return real_run(step)

    applier.run = run
    return applier


if __name__ == "__main__":
    fail_at, command = int(sys.argv[1]), sys.argv[2]
    real_apply_plan = apply.apply_plan

    def apply_plan(applier: Any, steps: Any, log: Any) -> None:
        real_apply_plan(failing_at(fail_at, applier), steps, log)

    from xenscripts.commands import run_command

    apply.apply_plan = apply_plan  # network_bridge imports it from the module when it applies
    sys.exit(run_command(command, sys.argv[2:], dict(os.environ), sys.stderr, sys.stdout))
