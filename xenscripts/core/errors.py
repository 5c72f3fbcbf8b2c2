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
