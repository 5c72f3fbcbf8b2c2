"""Network sysctls through ``/proc/sys/net`` (the caller's namespace; never /sys/class/net)."""

from __future__ import annotations

import os

from ..core.errors import HotplugError

PROC_SYS_NET = "/proc/sys/net"


def sysctl_path(key: str) -> str:
    """``ipv4/conf/vif1.0/proxy_arp`` -> ``/proc/sys/net/ipv4/conf/vif1.0/proxy_arp``."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise HotplugError(f"Invalid sysctl net/{key}")
    return os.path.join(PROC_SYS_NET, *parts)


def read_sysctl(key: str) -> str | None:
    """The value of net/*key*, or None when it does not exist (e.g. the device is gone)."""
    try:
        with open(sysctl_path(key), encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HotplugError(f"reading net/{key} failed: {e}") from None


def write_sysctl(key: str, value: str) -> None:
    try:
        with open(sysctl_path(key), "w", encoding="ascii") as f:
            f.write(value)
    except OSError as e:
        raise HotplugError(f"setting net/{key} to {value} failed: {e}") from None


def ensure_sysctl(key: str, value: str) -> str | None:
    """Set net/*key* to *value* if it differs; return the previous value when it changed."""
    old = read_sysctl(key)
    if old is None:
        raise HotplugError(f"setting net/{key} to {value} failed: no such sysctl")
    if old == value:
        return None
    write_sysctl(key, value)
    return old


def apply_sysctls(wanted: dict[str, str], previous: dict[str, str]) -> dict[str, str]:
    """Set every key of *wanted*; return *previous* plus the old value of each key changed now.

    A key already in *previous* keeps its first remembered value, so a second
    start never records our own setting as the one to restore.
    """
    remembered = dict(previous)
    for key, value in wanted.items():
        old = ensure_sysctl(key, value)
        if old is not None and key not in remembered:
            remembered[key] = old
    return remembered


def restore_sysctls(previous: dict[str, str]) -> list[str]:
    """Write each remembered value back; return the keys that no longer exist."""
    gone = []
    for key, value in previous.items():
        if read_sysctl(key) is None:
            gone.append(key)
        else:
            write_sysctl(key, value)
    return gone
