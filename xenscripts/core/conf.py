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


def _command(value: str) -> None:
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise ValueError("expected a command line starting with an absolute path")


def _bridge_pairs(value: str) -> None:
    import re

    for pair in value.replace(",", " ").split():
        if not re.fullmatch(rf"{_NAME}:{_NAME}", pair):
            raise ValueError(f"{pair!r} is not bridge:netdev")


class Key:
    """One key of the file: its check, and what the docs, man pages and example say of it."""

    __slots__ = ("check", "default", "doc", "example", "name", "readers", "values")

    def __init__(self, name: str, default: str, values: str, readers: tuple[str, ...], doc: str,
                 check: Callable[[str], None], example: str = "") -> None:
        self.name, self.default, self.values, self.readers, self.doc = name, default, values, readers, doc
        self.check = check
        self.example = example or default  # a valid value to show, where the default is a description

    def __call__(self, value: str) -> None:
        """Raise ValueError when *value* is not allowed for this key."""
        self.check(value)


VIF_SCRIPTS = ("vif-bridge", "vif-route", "vif-nat")
ENTRY_POINTS = ("vif-bridge", "vif-route", "vif-nat", "vif-openvswitch", "vif-setup", "network-bridge", "network-route",
                "network-nat")
_PATH = "an absolute path"

# Every key the file may hold: the one table the reader checks values with, and from which
# /etc/xen/xenscripts.conf.example, the man pages' FILES and docs/admin.md's list are generated
# (``python3 -m xenscripts.admin.confdoc``; a unit test fails when a checked-in copy differs).
# A default in angle brackets is a description, not a value.
KEYS: dict[str, Key] = {k.name: k for k in (
    Key("firewall", "auto", "auto | nft | legacy | none", (*VIF_SCRIPTS, "network-bridge", "network-nat", "xenscripts"),
        "which firewall writes the rules: auto = the one the host uses; none = write no rule",
        _choice("auto", "nft", "legacy", "none")),
    Key("antispoof", "no", "no | yes", (*VIF_SCRIPTS, "vif-openvswitch", "network-bridge", "network-nat",
                                          "xenscripts"),
        "yes: a guest may send only from its own MAC and addresses (plus ARP, DHCP, neighbour discovery)",
        _choice("no", "yes")),
    Key("dhcp_server", "no", "no | yes", VIF_SCRIPTS,
        "yes: with antispoof, the guest may still answer DHCP/DHCPv6 clients (UDP 68, 546); "
        "set it per guest in its backend's xenstore key",
        _choice("no", "yes")),
    Key("bridges", "<none>", "bridge:netdev[,bridge:netdev...]", ("network-bridge", "xenscripts"),
        "what a bare 'network-bridge start' (xenscripts-network.service) builds; none: the default route's NIC",
        _bridge_pairs, "xenbr0:eth0"),
    Key("dhcp", "no", "no | yes | isc", ("vif-nat", "network-nat"),
        "DHCP for NAT guests: yes = dnsmasq, isc = ISC dhcpd's configuration",
        _choice("no", "yes", "isc")),
    Key("ipv6", "auto", "auto | yes | no", ("network-route",),
        "IPv6 forwarding and proxy NDP too (auto: when the netdev has a global IPv6 address)",
        _choice("auto", "yes", "no")),
    Key("log_level", "debug", "debug | info | warning | error", ENTRY_POINTS,
        "the least severe line logged anywhere (syslog takes every level, the log file warnings and errors)",
        _choice("debug", "info", "warning", "error")),
    Key("log_file", "/var/log/xen/xen-hotplug.log", _PATH, ENTRY_POINTS,
        "warnings and errors, one line each", _abs_path),
    Key("socket", "/run/xenscripts/hotplugd.sock", _PATH, (*ENTRY_POINTS, "xenscripts-hotplugd", "xenscripts"),
        "hotplugd's socket (the entry points try it first)", _abs_path),
    Key("client_timeout", "30", "seconds, more than 0 and at most 35", ENTRY_POINTS,
        "how long an entry point waits for its whole call (libxl kills a script at 40 s)", _seconds),
    Key("script_dir", "/etc/xen/scripts", _PATH, (*VIF_SCRIPTS, "xenscripts"),
        "where the hooks (vif-post.d/) and our scripts live", _abs_path),
    Key("state_dir", "/run/xenscripts", _PATH, (*VIF_SCRIPTS, "network-bridge", "network-route", "network-nat",
                                                 "xenscripts"),
        "each vif's firewall record (firewall/), what network-route/network-nat started, and dnsmasq's files",
        _abs_path),
    Key("dhcpd_conf", "<the first that exists of /etc/dhcp/dhcpd.conf, /etc/dhcp3/dhcpd.conf, /etc/dhcpd.conf>",
        _PATH, ("vif-nat", "network-nat"), "with dhcp=isc, the ISC dhcpd configuration file to edit", _abs_path,
        "/etc/dhcp/dhcpd.conf"),
    Key("dhcpd_args", "<the first that exists of /etc/sysconfig/dhcpd, /etc/defaults/dhcp, /etc/default/dhcp-server, "
        "/etc/default/dhcp3-server, /etc/default/isc-dhcp-server>", _PATH, ("vif-nat", "network-nat"),
        "with dhcp=isc, the defaults file whose INTERFACES line gets the vif", _abs_path, "/etc/default/isc-dhcp-server"),
    Key("dhcpd_restart", "<the first init script of /etc/init.d/ isc-dhcp-server, dhcp-server, dhcp3-server, dhcp, dhcpd, with restart>",
        "a command line, run without a shell", ("vif-nat", "network-nat"),
        "with dhcp=isc, how to restart dhcpd after an edit", _command, "/etc/init.d/isc-dhcp-server restart"),
    Key("metrics_file", "<none: off>", _PATH, ("xenscripts-hotplugd", "xenscripts"),
        "hotplugd's counters and latency histograms for node_exporter's textfile collector, rewritten "
        "atomically (a .prom file in its --collector.textfile.directory)", _abs_path,
        "/var/lib/prometheus/node-exporter/xenscripts.prom"),
    Key("ovsdb", "/var/run/openvswitch/db.sock", _PATH, ("vif-openvswitch",),
        "the OVSDB server's unix socket vif-openvswitch talks to", _abs_path),
)}


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
        key = key.strip()
        where = f"{path} line {number}"
        if not eq or not key:
            raise ConfigError(f"{where}: expected key=value, got {raw!r}")
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(KEYS))})")
        try:
            value = _value(value)
        except ValueError as e:
            raise ConfigError(f"{where}: {e} in {raw.strip()!r}") from None
        try:
            KEYS[key](value)
        except ValueError as e:
            raise ConfigError(f"{where}: bad value {value!r} for {key}: {e}") from None
        settings[key] = value
    return settings


def _value(text: str) -> str:
    """The value after ``=``: a ``#`` after a blank starts a comment, unless inside quotes.

    ``firewall=nft   # comment`` is ``nft``; ``log_file=/srv/a#b`` keeps its ``#``
    (no blank before it); ``log_file="/srv/a #b"  # c`` is ``/srv/a #b``.
    """
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0:
            raise ValueError(f"no closing {text[0]}")
        rest = text[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise ValueError(f"{rest!r} after the closing quote")
        return text[1:end]
    for i, char in enumerate(text):
        if char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text


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


def read_config(env: Mapping[str, str]) -> tuple[dict[str, str], ConfigError | None]:
    """The host's settings for one run, read once: ``(settings, None)``, or ``({}, error)`` for a bad file.

    With a bad file the run still logs (with every default) and then reports the error.
    """
    try:
        return load_config(env), None
    except ConfigError as e:
        return {}, e


def setting(env: Mapping[str, str], conf: Mapping[str, str], key: str, default: str) -> str:
    """A host setting: ``XENSCRIPTS_<KEY>`` (tests) over the file's *key* over *default*."""
    return env.get(f"XENSCRIPTS_{key.upper()}") or conf.get(key) or default
