"""ISC dhcpd, the server upstream's vif-nat edits: its config file, its interfaces, its restart.

As upstream, but every edit replaces the whole file atomically (through a
symlink, never over it), host entries are matched exactly (``host dom1 {``
is not ``host dom10 {``), and dhcpd is restarted only when a file changed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping

from ..core.conf import setting
from ..core.errors import HotplugError
from ..core.files import write_file_atomically
from ..core.lock import DEFAULT_LOCK_DIR, hotplug_lock
from . import NAT_NETMASK, NAT_SUBNET, DhcpHost, checked, domain_name, ip_address, shell_word

CONF_FILES = ("/etc/dhcp/dhcpd.conf", "/etc/dhcp3/dhcpd.conf", "/etc/dhcpd.conf")
INIT_FILES = tuple(f"/etc/init.d/{n}" for n in ("isc-dhcp-server", "dhcp-server", "dhcp3-server", "dhcp", "dhcpd"))
ARG_FILES = ("/etc/sysconfig/dhcpd", "/etc/defaults/dhcp", "/etc/default/dhcp-server", "/etc/default/dhcp3-server",
             "/etc/default/isc-dhcp-server")
ARG_VARIABLES = ("DHCPDARGS", "DHCPD_INTERFACE", "INTERFACES", "INTERFACESv4")
SUBNET_LINE = f"subnet {NAT_SUBNET} netmask {NAT_NETMASK} "
RESTART_TIMEOUT = 10  # well inside the run's budget (libxl kills at 40 s)


def _first(paths: tuple[str, ...], test: Callable[[str], bool]) -> str | None:
    return next((p for p in paths if test(p)), None)


def conf_file(env: Mapping[str, str], conf: Mapping[str, str]) -> str:
    """dhcpd's config: ``dhcpd_conf`` (conf; ``XENSCRIPTS_DHCPD_CONF`` in tests), else upstream's search."""
    chosen = setting(env, conf, "dhcpd_conf", "")
    path = chosen or _first(CONF_FILES, os.path.exists)
    if not path or not os.path.exists(path):
        raise HotplugError(_not_found(f"dhcpd_conf={chosen} does not exist" if chosen else
                                      f"no configuration: tried {', '.join(CONF_FILES)}"))
    return path


def _not_found(what: str) -> str:
    """Upstream's message, then what was tried and what to do."""
    return (f"Failed to find dhcpd configuration or init file. ({what}; install isc-dhcp-server, set "
            "dhcpd_conf=, dhcpd_args= and dhcpd_restart= in /etc/xen/xenscripts.conf, or use dhcp=yes for dnsmasq)")


def restart_command(env: Mapping[str, str], conf: Mapping[str, str]) -> list[str]:
    """``dhcpd_restart`` (a command line, split, never run by a shell), else ``<init script> restart``."""
    command = shlex.split(setting(env, conf, "dhcpd_restart", ""))
    if command:
        if not os.access(command[0], os.X_OK):
            raise HotplugError(_not_found(f"dhcpd_restart: {command[0]} is not executable"))
        return command
    init = _first(INIT_FILES, lambda p: os.access(p, os.X_OK))
    if not init:
        raise HotplugError(_not_found(f"no init script: tried {', '.join(INIT_FILES)}"))
    return [init, "restart"]


def args_file(env: Mapping[str, str], conf: Mapping[str, str]) -> str | None:
    """The file naming dhcpd's interfaces (``INTERFACES=`` …), if the host has one."""
    return setting(env, conf, "dhcpd_args", "") or _first(ARG_FILES, os.path.exists)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise HotplugError(f"Cannot read {path}: {e}") from None


def host_entry(host: DhcpHost) -> str:
    """Upstream's one-line host declaration (every field checked for dhcpd.conf's syntax)."""
    checked(host)
    return (f"host {host.hostname} {{ hardware ethernet {host.mac}; fixed-address {host.address}; "
            f"option routers {host.router}; option host-name \"{host.hostname}\"; }}")


def with_host(text: str, host: DhcpHost, present: bool) -> str:
    """*text* without any declaration of *host*'s name (exact match), plus its entry if *present*."""
    pattern = re.compile(rf"^\s*host\s+{re.escape(host.hostname)}\s*\{{")
    lines = [line for line in text.splitlines() if not pattern.match(line)]
    if present:
        lines.append(host_entry(host))
    return "".join(f"{line}\n" for line in lines)


def with_subnet(text: str, present: bool, domain: str | None, nameserver: str | None) -> str:
    """*text* with (or without) network-nat's ``subnet 10.0.0.0 netmask 255.255.0.0`` line."""
    lines = text.splitlines()
    kept = [line for line in lines if not line.startswith(SUBNET_LINE)]
    if present:
        if len(kept) < len(lines):
            return text
        options = (f'option domain-name "{domain}"; ' if domain else "") + \
            (f"option domain-name-servers {nameserver}; " if nameserver else "")
        kept.append(f"{SUBNET_LINE}{{ {options}}}")
    return "".join(f"{line}\n" for line in kept)


def with_interface(text: str, dev: str, present: bool) -> str:
    """Add or remove *dev* as a whole word in the interface variables of dhcpd's args file (sourced as shell)."""
    shell_word(dev, "vif name")

    def edit(m: re.Match[str]) -> str:
        words = [w for w in m.group(3).split() if w != dev] + ([dev] if present else [])
        quote = m.group(2) or ('"' if len(words) > 1 else "")  # two words unquoted would run the second
        return f'{m.group(1)}={quote}{" ".join(words)}{quote}'

    names = "|".join(ARG_VARIABLES)
    return re.sub(rf'^({names})=(["\']?)([^"\'\n]*)\2', edit, text, flags=re.MULTILINE)


def resolv_conf(path: str = "/etc/resolv.conf") -> tuple[str | None, str | None]:
    """(last search/domain word, first nameserver), as upstream's network-nat reads them; a value that is
    not a DNS name or an address is left out (it would break out of dhcpd.conf's quotes)."""
    domain = nameserver = None
    for line in _read(path).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("search", "domain"):
            domain = words[-1]
        elif len(words) >= 2 and words[0] == "nameserver" and nameserver is None:
            nameserver = words[1]
    return domain_name(domain), ip_address(nameserver)


def _edit(path: str, change: Callable[[str], str]) -> bool:
    """Apply *change* to the text of *path*; write it back (atomically) only if it differs."""
    old = _read(path)
    new = change(old)
    if new == old:
        return False
    write_file_atomically(path, new, _mode_of(path))
    return True


def _mode_of(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o644


def restart_dhcpd(env: Mapping[str, str], conf: Mapping[str, str], debug: Callable[[str], None]) -> None:
    """Run the restart command; a failure is logged, as upstream ignores it (dhcpd refuses an empty set-up)."""
    argv = restart_command(env, conf)
    with tempfile.TemporaryFile("w+") as output:  # a daemonised dhcpd may keep it open
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    timeout=RESTART_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            debug(f"{' '.join(argv)} failed: {e}")
            return
        if result.returncode != 0:
            output.seek(0)
            debug(f"{' '.join(argv)} exited with status {result.returncode}: {output.read().strip()}")


def _lock_dir(env: Mapping[str, str]) -> str:
    return env.get("XENSCRIPTS_LOCK_DIR", DEFAULT_LOCK_DIR)


def update_isc_host(env: Mapping[str, str], conf: Mapping[str, str], host: DhcpHost, dev: str, present: bool,
                    debug: Callable[[str], None]) -> None:
    """vif-nat: the guest's host entry and its vif in the interfaces list (caller holds the lock)."""
    checked(host)  # both files' values, before either is touched
    shell_word(dev, "vif name")
    path = conf_file(env, conf)
    changed = _edit(path, lambda text: with_host(text, host, present))
    arg_path = args_file(env, conf)
    if arg_path:
        changed |= _edit(arg_path, lambda text: with_interface(text, dev, present))
    if changed:
        debug(f"{'added' if present else 'removed'} DHCP host {host.hostname} in {path}")
        restart_dhcpd(env, conf, debug)


def _update_subnet(env: Mapping[str, str], conf: Mapping[str, str], present: bool,
                   debug: Callable[[str], None]) -> None:
    path = conf_file(env, conf)
    restart_command(env, conf)  # fail before editing when there is no way to restart
    with hotplug_lock("vif-nat-dhcp", _lock_dir(env)):
        changed = _edit(path, lambda text: with_subnet(text, present, *resolv_conf()))
    if changed:
        debug(f"{'added' if present else 'removed'} {SUBNET_LINE.strip()} in {path}")
        restart_dhcpd(env, conf, debug)


def start_isc(env: Mapping[str, str], conf: Mapping[str, str], debug: Callable[[str], None]) -> None:
    """network-nat start: declare the guests' subnet, restart dhcpd."""
    _update_subnet(env, conf, True, debug)


def stop_isc(env: Mapping[str, str], conf: Mapping[str, str], debug: Callable[[str], None]) -> None:
    """network-nat stop: remove the subnet declaration, restart dhcpd."""
    _update_subnet(env, conf, False, debug)
