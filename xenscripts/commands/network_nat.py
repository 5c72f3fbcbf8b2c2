"""network-nat: dom0 as the NAT router of a private guest network (forwarding, MASQUERADE, DHCP)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError
from ..core.files import read_json, state_dir
from ..dhcp import dhcp_mode
from ..firewall import settings_from, update_network_rules
from ..frame.network import NetworkRun, print_sysctl_status, run_network_script, start_sysctls, stop_sysctls
from ..netlink.sysctl import read_sysctl

USAGE = """usage: network-nat start|stop|status [netdev=IF] [dhcp=no|yes|isc] [antispoof=no|yes] [--json] [--dry-run]
start: net.ipv4.ip_forward=1 and one MASQUERADE for traffic leaving netdev (default
eth0); dhcp=yes starts dnsmasq for the guests (never on netdev), dhcp=isc adds the
guests' subnet to ISC dhcpd's configuration. stop undoes all of it. status shows it."""

KEYS = ("netdev", "dhcp", "antispoof", "firewall")
SYSCTLS = {"ipv4/ip_forward": "1"}


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    return run_network_script(argv, env, stderr, stdout, KEYS, _network_nat)


def _network_nat(run: NetworkRun) -> None:
    netdev = validate.ifname(run.variables.get("netdev") or "eth0", "netdev")
    mode = dhcp_mode(run.variables)
    directory = state_dir(run.env, run.conf)
    path = os.path.join(directory, f"network-nat-{netdev}.json")
    settings = settings_from(run.variables)
    if run.command == "start":
        if read_sysctl(f"ipv4/conf/{netdev}/forwarding") is None:
            raise HotplugError(f"{netdev} does not exist.  Specify another interface with netdev=<if>.")
        start_sysctls(run, SYSCTLS, path, dhcp=mode, firewall=settings.backend)
        if run.dry_run:
            run.print(f"would add a MASQUERADE for traffic leaving {netdev}; dhcp={mode}")
            return
        try:
            update_network_rules("nat", netdev, None, True, settings, run.log)
            start_dhcp(run, mode, directory, netdev)
        except HotplugError:
            # Never half-configured: undo the rule and the sysctl before reporting.
            update_network_rules("nat", netdev, None, False, settings, run.log)
            stop_sysctls(run, path)
            raise
    elif run.command == "stop":
        started = read_json(path) or {}  # stop what start started: its DHCP server, its backend
        mode = started.get("dhcp", mode)
        if started.get("firewall"):
            settings = settings_from({**run.variables, "firewall": started["firewall"]})
        if run.dry_run:
            stop_sysctls(run, path)
            run.print(f"would remove the MASQUERADE for {netdev}; dhcp={mode}")
            return
        stop_dhcp(run, mode, directory)
        update_network_rules("nat", netdev, None, False, settings, run.log)
        stop_sysctls(run, path)
    else:
        print_sysctl_status(run, SYSCTLS, path, netdev=netdev, dhcp=mode,
                            dhcp_server=dhcp_server_status(run, mode, directory))


def start_dhcp(run: NetworkRun, mode: str, directory: str, netdev: str) -> None:
    if mode == "yes":
        from ..dhcp.dnsmasq import DnsmasqFiles, start_dnsmasq

        start_dnsmasq(DnsmasqFiles.under(directory), netdev, run.log.debug)
    elif mode == "isc":
        from ..dhcp.isc import start_isc

        start_isc(run.env, run.conf, run.log.debug)


def stop_dhcp(run: NetworkRun, mode: str, directory: str) -> None:
    if mode == "yes":
        from ..dhcp.dnsmasq import DnsmasqFiles, stop_dnsmasq

        stop_dnsmasq(DnsmasqFiles.under(directory), run.log.debug)
    elif mode == "isc":
        from ..dhcp.isc import stop_isc

        stop_isc(run.env, run.conf, run.log.debug)


def dhcp_server_status(run: NetworkRun, mode: str, directory: str) -> str:
    if mode != "yes":
        return "not managed" if mode == "no" else "ISC dhcpd (its own service)"
    from ..dhcp.dnsmasq import DnsmasqFiles, running_pid

    pid = running_pid(DnsmasqFiles.under(directory))
    return f"dnsmasq running, pid {pid}" if pid else "dnsmasq not running"
