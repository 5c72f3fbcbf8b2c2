"""The host's settings: ``/etc/xen/xenscripts.conf``, ``key=value`` lines and ``#`` comments.

One reader for every command, the daemon and the thin client (standard
library only). Precedence, lowest first: built-in default < this file <
environment < argv ``k=v`` < xenstore; this module owns the first two.
``XENSCRIPTS_CONF`` moves the file, for tests.
"""

from __future__ import annotations

from .errors import InputError

TYPE_CHECKING = False
if TYPE_CHECKING:  # the thin client reads this file on every call: no typing, no re at import
    from collections.abc import Callable, Mapping

DEFAULT_PATH = "/etc/xen/xenscripts.conf"
_NAME = r"[A-Za-z0-9_.@-]{1,15}"


class ConfigError(InputError):
    """A bad line in the host's configuration file; the message names file and line."""


def _choice(*allowed: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
    return check


def _seconds(value: str) -> None:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("expected a number of seconds, like 20 or 2.5") from None
    if not 0 < seconds <= 35:
        raise ValueError("expected more than 0 and at most 35 seconds (libxl kills a script at 40 s)")


def _abs_path(value: str) -> None:
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise ValueError("expected an absolute path")


def _bridge_pairs(value: str) -> None:
    import re

    for pair in value.replace(",", " ").split():
        if not re.fullmatch(rf"{_NAME}:{_NAME}", pair):
            raise ValueError(f"{pair!r} is not bridge:netdev")


# Every key the file may hold, with the check its value must pass.
KEYS: dict[str, Callable[[str], None]] = {
    "socket": _abs_path,
    "client_timeout": _seconds,
    "log_file": _abs_path,
    "log_level": _choice("debug", "info", "warning", "error"),
    "script_dir": _abs_path,
    "firewall": _choice("auto", "nft", "legacy", "none"),
    "antispoof": _choice("no", "yes"),
    "bridges": _bridge_pairs,
    "state_dir": _abs_path,
    "dhcp": _choice("no", "yes", "isc"),
    "ipv6": _choice("auto", "yes", "no"),
    "dhcpd_conf": _abs_path,
    "dhcpd_args": _abs_path,
    "dhcpd_restart": _abs_path,
    "ovsdb": _abs_path,
}


def config_path(env: Mapping[str, str]) -> str:
    """The file to read: ``XENSCRIPTS_CONF`` (tests) or ``/etc/xen/xenscripts.conf``."""
    return env.get("XENSCRIPTS_CONF") or DEFAULT_PATH


def parse_config(text: str, path: str) -> dict[str, str]:
    """``key=value`` lines of *text*; a bad line raises ConfigError naming *path* and the line."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        where = f"{path} line {number}"
        if not eq or not key:
            raise ConfigError(f"{where}: expected key=value, got {raw!r}")
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(KEYS))})")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        try:
            KEYS[key](value)
        except ValueError as e:
            raise ConfigError(f"{where}: bad value {value!r} for {key}: {e}") from None
        settings[key] = value
    return settings


def load_config(env: Mapping[str, str]) -> dict[str, str]:
    """The host's settings; a missing file is an empty configuration."""
    path = config_path(env)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    return parse_config(text, path)


def setting(env: Mapping[str, str], conf: Mapping[str, str], key: str, default: str) -> str:
    """A host setting: ``XENSCRIPTS_<KEY>`` (tests) over the file's *key* over *default*."""
    return env.get(f"XENSCRIPTS_{key.upper()}") or conf.get(key) or default
