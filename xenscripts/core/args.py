"""xend-style argument parsing: a command word plus ``key=value`` pairs, never eval'ed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InputError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Arguments:
    """The command word (first argument without ``=``) and the assignments."""

    command: str | None = None
    assignments: dict[str, str] = field(default_factory=dict)


def _unquote(value: str) -> str:
    """Strip one pair of matching outer quotes, as the shell's eval would."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_args(args: list[str]) -> Arguments:
    """Parse arguments as upstream's findCommand and evalVariables see them."""
    parsed = Arguments()
    for arg in args:
        eq = arg.find("=")
        if eq < 0:
            if parsed.command is None:
                parsed.command = arg
            continue
        if eq == 0:  # upstream ignores "=x": expr index gives position 1
            continue
        key = arg[:eq]
        if not _KEY.fullmatch(key):
            raise InputError(f"Invalid argument {arg!r}: {key!r} is not a variable name")
        parsed.assignments[key] = _unquote(arg[eq + 1 :])
    return parsed


def merge_inputs(env: dict[str, str] | None, assignments: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """Variables named in *keys*: the environment first, then the command line over it."""
    merged = {k: env[k] for k in keys if env and k in env}
    merged.update(assignments)
    return merged
