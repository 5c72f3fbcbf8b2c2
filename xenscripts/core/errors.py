"""Exceptions shared by the library: each one carries the text for hotplug-error."""

from __future__ import annotations


class HotplugError(Exception):
    """A fatal error: its message goes to ``hotplug-error``, stderr and the logs."""


class InputError(HotplugError):
    """Bad input (argument, environment or xenstore value); nothing was changed."""


class DeviceGone(HotplugError):
    """The device an operation was aimed at does not exist (any more)."""


class CallerGone(HotplugError):
    """The caller of this run has gone (killed by libxl, or it timed out): stop and undo."""


class MissingComponent(HotplugError):
    """An optional program or module is not installed; the message names its Debian package."""


BUG_REPORT = ("this is a bug in xenscripts: please report it with this message and the output of "
              "'xenscripts status --json' (docs/admin.md, 'Reporting a bug')")


def describe(e: BaseException) -> str:
    """An unexpected exception in words: what failed and on what, never a Python repr."""
    if hasattr(e, "timeout") and hasattr(e, "cmd"):  # subprocess.TimeoutExpired
        return f"{e.cmd[-1] if isinstance(e.cmd, list) else e.cmd} timed out after {e.timeout:g} s"
    if isinstance(e, OSError) and (e.strerror or e.filename):
        where = f" ({e.filename})" if e.filename else ""
        return f"{type(e).__name__}: {e.strerror or e}{where}"
    text = str(e)
    if isinstance(e, KeyError) and e.args:
        text = f"no {e.args[0]}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def internal_error(what: str, e: BaseException) -> str:
    """The message of a bug: *what* failed, the exception in words, and how to report it."""
    return f"{what} failed; internal error: {describe(e)}; {BUG_REPORT}"
