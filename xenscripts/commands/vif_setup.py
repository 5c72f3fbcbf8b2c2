"""vif-setup: the udev entry; runs ``$script`` (or vif-bridge) with the same arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import TextIO

USAGE = """\
usage: {name} online|offline|add|remove type_if=vif|tap [key=value ...]

The udev entry point: runs the script named by `script` in the environment
(with the same arguments), or vif-bridge beside it. Options: --help, --version.
"""


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Dispatch like upstream's ``exec $script $*``, in-process when the script is ours."""
    script = env.get("script") or os.path.join(os.path.dirname(argv[0]) or ".", "vif-bridge")
    words = script.split()  # upstream's unquoted $script: extra words become arguments
    args = words[1:] + list(argv[1:])
    if os.path.basename(words[0]) == "vif-bridge" and _is_ours(words[0]):
        from . import vif_bridge

        return vif_bridge.run([words[0], *args], env, stderr)
    try:
        return subprocess.run([words[0], *args], env=dict(env), stdin=subprocess.DEVNULL, timeout=40, check=False).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        if stderr is not None:
            stderr.write(f"{argv[0]}: cannot run {words[0]}: {e}\n")
        return 1


def _is_ours(path: str) -> bool:
    """True if *path* is one of our entry points (so it can run in this process)."""
    try:
        with open(path, "rb") as f:
            return b"xenscripts" in f.read(512)
    except OSError:
        return False
