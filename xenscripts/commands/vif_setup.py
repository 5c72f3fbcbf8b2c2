"""vif-setup: the udev entry; runs ``$script`` (or vif-bridge) with the same arguments."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from ..core.errors import InputError

USAGE = """\
usage: {name} online|offline|add|remove type_if=vif|tap [key=value ...]

The udev entry point: runs the script named by `script` in the environment
(with the same arguments), or vif-bridge beside it. Options: --help, --version.
"""


def resolve(argv: list[str], env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """What ``exec $script $*`` would run: (our command or None for a foreign program, its argv)."""
    from ..entry.entryfile import command_of_file

    script = env.get("script") or os.path.join(os.path.dirname(argv[0]) or ".", "vif-bridge")
    words = script.split()  # upstream's unquoted $script: extra words become arguments
    if not words:
        raise InputError(f"script={script!r} names no program to run")
    if command_of_file(words[0]) == "vif-setup":
        raise InputError(f"script={script!r} names vif-setup itself")
    return command_of_file(words[0]), [words[0], *words[1:], *argv[1:]]


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """``exec $script $*`` for our own scripts, in this process.

    The entry point resolves vif-setup before anything runs (``entry/client.py``)
    and exec's a foreign script itself, so a foreign one never reaches here.
    """
    try:
        command, args = resolve(argv, env)
        if command is None:
            raise InputError(f"{args[0]} is not one of ours: only the vif-setup entry file runs it")
    except InputError as e:
        if stderr is not None:
            stderr.write(f"{os.path.basename(argv[0])}: {e}\n")
        return 1
    from . import run_command

    return run_command(command, args, env, stderr, stdout)
