"""The error catalogue: every message the package raises or logs as an error, read from its source.

A message never shows a caught exception as a Python repr (``{e!r}``), and a
bug is reported in words with how to report it (``core.errors.internal_error``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from xenscripts.core.errors import BUG_REPORT, describe, internal_error

PACKAGE = Path(__file__).resolve().parents[2] / "xenscripts"
ERROR_CALLS = {"error", "warning", "fatal", "say"}  # log.error(...), log.warning(...), self.say(...)


def _messages() -> list[tuple[str, int, ast.JoinedStr, set[str]]]:
    """Each f-string raised as an exception or logged as an error, with the names its handlers caught."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name):
            for node in ast.walk(handler):
                call = node.exc if isinstance(node, ast.Raise) else node
                if not isinstance(call, ast.Call):
                    continue
                func = call.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if not (isinstance(node, ast.Raise) or name in ERROR_CALLS):
                    continue
                for arg in call.args:
                    if isinstance(arg, ast.JoinedStr):
                        found.append((path.relative_to(PACKAGE.parent).as_posix(), arg.lineno, arg, {handler.name}))
    return found


def test_the_catalogue_is_read():
    assert len(_messages()) >= 30  # every handler that reports: a walk that finds none would pass anything


def test_no_message_shows_a_caught_exception_as_a_repr():
    bad = [f"{path}:{line}" for path, line, text, caught in _messages()
           for part in text.values
           if isinstance(part, ast.FormattedValue) and part.conversion == ord("r")
           and isinstance(part.value, ast.Name) and part.value.id in caught]
    assert not bad, f"a caught exception shown as a repr (use str(e) or core.errors.describe): {bad}"


def test_an_internal_error_is_in_words_and_says_how_to_report_it():
    message = internal_error("vif-bridge online", KeyError("mac"))
    assert message == f"vif-bridge online failed; internal error: KeyError: no mac; {BUG_REPORT}"
    assert "xenscripts status --json" in message
    assert describe(FileNotFoundError(2, "No such file or directory", "/x")) == \
        "FileNotFoundError: No such file or directory (/x)"
    assert describe(RuntimeError()) == "RuntimeError"
