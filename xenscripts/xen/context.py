"""Inputs of a vif script run: argv + environment + xenstore, parsed and validated.

Precedence, lowest first: environment < ``k=v`` arguments < xenstore keys
under the backend path (upstream's vif-common.sh order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..core import validate
from ..core.args import Arguments
from ..core.errors import InputError

VIF_COMMANDS = ("online", "offline", "add", "remove")
# Variables a vif script takes from the environment (argv may set them too).
VIF_VARIABLES = ("vif", "INTERFACE", "XENBUS_PATH", "bridge", "ip", "netdev", "script", "type_if",
                 "dhcp", "UDEV_CALL", "vifname", "firewall", "antispoof", "dhcp_server", "XTABLES_LOCKFILE")
# Firewall settings a backend directory may hold (they win over conf, env and argv).
FIREWALL_KEYS = ("firewall", "antispoof", "dhcp_server")
_BACKEND = re.compile(r"(?:^|/)backend/vif/([0-9]+)/([0-9]+)\Z")
_XS_PATH = re.compile(r"^/?[A-Za-z0-9_@.\-]+(/[A-Za-z0-9_@.\-]+)*$")
_TAP = re.compile(r"vif([0-9]+)\.([0-9]+)-emu")


class Reader(Protocol):
    def read(self, path: str) -> str | None: ...


@dataclass
class VifContext:
    """Everything a vif script needs to know, already validated."""

    script: str
    command: str
    type_if: str
    vif: str
    dev: str
    backend: str
    variables: dict[str, str]
    domid: int | None = None
    devid: int | None = None
    vifname: str | None = None
    ip: list[str] = field(default_factory=list)
    mac: str | None = None

    @property
    def plugging(self) -> bool:
        """True for online/add, False for offline/remove."""
        return self.command in ("online", "add")

    @property
    def frontend(self) -> str | None:
        """The frontend directory, from the backend path (never from a renamed device)."""
        if self.domid is None:
            return None
        return f"/local/domain/{self.domid}/device/vif/{self.devid}"

    def key(self, name: str) -> str:
        return f"{self.backend}/{name}"


def backend_ids(path: str) -> tuple[int, int] | None:
    """(domid, devid) from ``[/local/domain/N/]backend/vif/D/N``."""
    m = _BACKEND.search(path)
    return (int(m.group(1)), int(m.group(2))) if m else None


def checked_backend_path(path: str) -> str:
    """*path* if it is a plausible xenstore path we may write under."""
    if not _XS_PATH.fullmatch(path) or ".." in path.split("/"):
        raise InputError(f"Invalid XENBUS_PATH {path!r}")
    return path


def read_xs(xs: Reader, path: str, default: str | None) -> str | None:
    """Upstream's xenstore_read_default: an existing node wins, even when empty."""
    value = xs.read(path)
    return default if value is None else value


def vif_device(variables: Mapping[str, str], type_if: str) -> tuple[str, str]:
    """(device name, backend path) for a vif or a tap run, validated."""
    if type_if == "vif":
        if not variables.get("XENBUS_PATH"):
            raise InputError("XENBUS_PATH is not set")
        backend = checked_backend_path(variables["XENBUS_PATH"])
        if not variables.get("vif"):
            raise InputError("vif is not set")
        return validate.ifname(variables["vif"], "vif name"), backend
    interface = variables.get("INTERFACE", "")
    if not interface:
        raise InputError("INTERFACE is not set")
    m = _TAP.fullmatch(validate.ifname(interface, "INTERFACE"))
    if not m:
        raise InputError(f"Invalid INTERFACE {interface!r}: expected vif<domid>.<devid>-emu")
    return interface, f"/local/domain/0/backend/vif/{m.group(1)}/{m.group(2)}"


def build_vif_context(script: str, args: Arguments, variables: dict[str, str], type_if: str,
                      xs: Reader) -> VifContext:
    """Read the common backend keys (vifname, ip, mac) and validate everything."""
    vif, backend = vif_device(variables, type_if)
    ctx = VifContext(script=script, command=args.command or "", type_if=type_if, vif=vif, dev=vif,
                     backend=backend, variables=variables)
    ids = backend_ids(backend)
    if ids:
        ctx.domid, ctx.devid = ids
    vifname = read_xs(xs, ctx.key("vifname"), "")
    if vifname:
        ctx.vifname = validate.ifname(vifname + ("-emu" if type_if == "tap" else ""), "vifname")
        ctx.dev = ctx.vifname
    for key in FIREWALL_KEYS:
        value = xs.read(ctx.key(key))
        if value is not None:
            variables[key] = value
    ctx.ip = validate.ip_list(read_xs(xs, ctx.key("ip"), variables.get("ip", "")) or "", ctx.key("ip"))
    mac = xs.read(ctx.key("mac"))
    if mac:
        ctx.mac = validate.mac(mac, f"guest MAC address in {ctx.key('mac')}")
    return ctx
