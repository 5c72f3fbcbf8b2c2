"""network-route: dom0 as a router for routed guests (forwarding, proxy ARP/NDP on netdev)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError
from ..core.files import state_dir
from ..frame.network import NetworkRun, print_sysctl_status, run_network_script, start_sysctls, stop_sysctls
from ..netlink.address import AF_INET6, primary_address
from ..netlink.link import Net
from ..netlink.sysctl import read_sysctl

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
