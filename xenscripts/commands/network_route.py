"""network-route: dom0 as a router for routed guests (forwarding, proxy ARP/NDP on netdev)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError
from ..core.files import read_json, remove_file, state_dir, write_json
from ..frame.network import NetworkRun, run_network_script
from ..netlink.address import AF_INET6, primary_address
from ..netlink.link import Net
from ..netlink.sysctl import apply_sysctls, read_sysctl, restore_sysctls

USAGE = """usage: network-route start|stop|status [netdev=IF] [ipv6=auto|yes|no] [--json] [--dry-run]
start: net.ipv4.ip_forward=1 and proxy_arp on netdev (default eth0); with IPv6
(ipv6=yes, or auto when netdev has a global IPv6 address) also IPv6 forwarding
and proxy_ndp on netdev. stop: puts back the values start changed. status: shows them."""

KEYS = ("netdev", "ipv6")


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    return run_network_script(argv, env, stderr, stdout, KEYS, _network_route)


def _network_route(run: NetworkRun) -> None:
    netdev = validate.ifname(run.variables.get("netdev") or "eth0", "netdev")
    ipv6 = run.variables.get("ipv6") or "auto"
    if ipv6 not in ("auto", "yes", "no"):
        raise HotplugError(f"Invalid ipv6={ipv6!r}: expected auto, yes or no")
    path = os.path.join(state_dir(run.env, run.conf), f"network-route-{netdev}.json")
    if run.command == "start":
        wanted = route_sysctls(netdev, _wants_ipv6(netdev, ipv6))
        if read_sysctl(f"ipv4/conf/{netdev}/proxy_arp") is None:
            raise HotplugError(f"{netdev} does not exist.  Specify another interface with netdev=<if>.")
        start_sysctls(run, wanted, path)
    elif run.command == "stop":
        stop_sysctls(run, path)
    else:
        print_sysctl_status(run, route_sysctls(netdev, True), path)


def route_sysctls(netdev: str, ipv6: bool) -> dict[str, str]:
    """The sysctls (under net/) network-route turns on."""
    wanted = {"ipv4/ip_forward": "1", f"ipv4/conf/{netdev}/proxy_arp": "1"}
    if ipv6:
        wanted.update({"ipv6/conf/all/forwarding": "1", f"ipv6/conf/{netdev}/proxy_ndp": "1"})
    return wanted


def _wants_ipv6(netdev: str, ipv6: str) -> bool:
    if ipv6 != "auto":
        return ipv6 == "yes"
    with Net() as net:
        link = net.link(netdev)
        return link is not None and primary_address(net, link, AF_INET6) is not None


def start_sysctls(run: NetworkRun, wanted: dict[str, str], path: str, **extra: str) -> None:
    """Set *wanted*, remembering in *path* the values they had before the first start (and *extra*)."""
    if run.dry_run:
        for key, value in wanted.items():
            run.print(f"would set net.{key.replace('/', '.')} = {value} (now {read_sysctl(key)})")
        return
    state = read_json(path) or {}
    remembered = apply_sysctls(wanted, state.get("sysctls", {}))
    write_json(path, {**state, **extra, "sysctls": remembered})
    run.log.debug(f"{run.name} start: set {', '.join(sorted(wanted))}; remembered {remembered}")


def stop_sysctls(run: NetworkRun, path: str) -> None:
    """Put back what start changed, then forget it; nothing remembered means nothing to do."""
    state = read_json(path)
    if state is None:
        run.log.debug(f"{run.name} stop: nothing to restore ({path} does not exist)")
        return
    if run.dry_run:
        for key, value in state.get("sysctls", {}).items():
            run.print(f"would set net.{key.replace('/', '.')} = {value}")
        return
    gone = restore_sysctls(state.get("sysctls", {}))
    if gone:
        run.log.debug(f"{run.name} stop: no longer there: {', '.join(gone)}")
    remove_file(path)


def print_sysctl_status(run: NetworkRun, keys: dict[str, str], path: str, **extra: object) -> None:
    """The current values of *keys*, and whether start is in effect (remembered state)."""
    state = read_json(path)
    values = {f"net.{k.replace('/', '.')}": read_sysctl(k) for k in keys}
    report = {"started": state is not None, "sysctls": values,
              "remembered": {f"net.{k.replace('/', '.')}": v for k, v in (state or {}).get("sysctls", {}).items()},
              **extra}
    if run.json:
        run.print(json.dumps(report, indent=1, sort_keys=True))
        return
    lines = [f"{run.name}: {'started' if state is not None else 'not started'}"]
    lines += [f"{k} = {'(none)' if v is None else v}" for k, v in values.items()]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    run.print("\n".join(lines))
