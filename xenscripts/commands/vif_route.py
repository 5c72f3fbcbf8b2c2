"""vif-route: a guest NIC as a routed point-to-point link (host routes in dom0, proxy ARP/NDP)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError
from ..firewall import VifFirewall, settings_from, update_vif_rules
from ..frame.steps import ensure_vif_name, hook_variables
from ..frame.vif import Run, run_vif_script
from ..netlink.address import (
    AF_INET,
    AF_INET6,
    delete_host_address,
    ensure_host_address,
    family_of,
    primary_address,
)
from ..netlink.link import Link, Net, Undo
from ..netlink.neighbour import delete_proxy_neighbour, ensure_proxy_neighbour
from ..netlink.route import delete_host_route, replace_host_route, split_address
from ..netlink.sysctl import ensure_sysctl, read_sysctl, write_sysctl
from ..xen.hooks import call_hooks

USAGE = """usage: vif-route online|offline type_if=vif | add|remove type_if=tap [netdev=IF] [ip="A B"]
Routes a guest NIC: dom0's address (from netdev, default eth0) as /32 on the vif,
proxy_arp, one host route per guest address (metric 1 tap, 2 vif); IPv6 guest
addresses get IPv6 routes and proxy NDP entries on netdev. Offline removes them."""


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Entry point: ``vif-route online|offline type_if=vif`` or ``add|remove type_if=tap``."""
    return run_vif_script(argv, env, stderr, _vif_route)


def _vif_route(run: Run) -> None:
    ctx = run.ctx
    assert ctx is not None
    netdev_name = validate.ifname(ctx.variables.get("netdev") or "eth0", "netdev")
    metric = 1 if ctx.type_if == "tap" else 2
    with Net() as net:
        netdev = net.link(netdev_name)
        if ctx.plugging:
            main_ip = dom0_address(run, net, netdev_name, netdev)
            plug(run, net, netdev, main_ip, metric)
        else:
            unplug(run, net, netdev, metric)
    run.log.debug(f"Successful vif-route {ctx.command} for {ctx.dev}.")


def dom0_address(run: Run, net: Net, name: str, netdev: Link | None) -> str:
    """dom0's IPv4 address on netdev *name*, with upstream's message (and what is wrong) when it has none."""
    address = primary_address(net, netdev) if netdev is not None else None
    if not address:
        assert run.ctx is not None
        why = "it does not exist" if netdev is None else "it has no IPv4 address"
        # Upstream's text, double space included (fatal joins its two arguments with a space).
        raise HotplugError(f"{name} is not up.  Bring it up or specify another "
                           f"interface with  netdev=<if> as a parameter to {run.ctx.script}. ({why}; in an xl "
                           "vif spec the key is gatewaydev=<if>; in /etc/xen/xl.conf, vif.default.gatewaydev)")
    return address


def plug(run: Run, net: Net, netdev: Link | None, main_ip: str, metric: int) -> None:
    """Address, proxy_arp, up, routes, proxy NDP, firewall, hooks; undone if a step fails."""
    ctx = run.ctx
    assert ctx is not None and netdev is not None
    undo = Undo()
    try:
        dev = ensure_vif_name(net, ctx, undo, run.log.debug)
        main_ip6 = primary_address(net, netdev, AF_INET6)
        for address in filter(None, (main_ip, main_ip6)):
            if ensure_host_address(net, dev, address):
                undo.push(f"removing {address} from {dev.name}", partial(delete_host_address, net, dev, address))
        old = ensure_sysctl(f"ipv4/conf/{dev.name}/proxy_arp", "1")
        if old is not None:
            undo.push(f"restoring proxy_arp of {dev.name}",
                      lambda: write_sysctl(f"ipv4/conf/{dev.name}/proxy_arp", old))
        if not dev.up:
            net.set_link(dev, state="up")
            undo.push(f"bringing {dev.name} down", lambda: net.set_link(dev, state="down"))
        for item in ctx.ip:
            v6 = family_of(split_address(item)[0]) == AF_INET6
            replace_host_route(net, item, dev, main_ip6 if v6 else main_ip, metric)
            undo.push(f"removing route {item}", partial(delete_host_route, net, item, dev.index, metric))
            proxied = _proxied_address(item)
            if proxied:
                if read_sysctl(f"ipv6/conf/{netdev.name}/proxy_ndp") == "0":
                    run.log.warning(f"proxy_ndp is off on {netdev.name}: the LAN cannot reach {proxied} "
                                    "until network-route start ipv6=yes")
                ensure_proxy_neighbour(net, proxied, netdev)
                undo.push(f"removing proxy entry {proxied}",
                          partial(delete_proxy_neighbour, net, proxied, netdev.index))
        update_vif_rules(_vif_firewall(run), True, settings_from(ctx.variables), run.log)
        call_hooks(run.script_dir, "vif", "post", hook_variables(run, main_ip=main_ip, netdev=netdev.name))
    except HotplugError:
        undo.rollback(run.log.debug)
        raise


def unplug(run: Run, net: Net, netdev: Link | None, metric: int) -> None:
    """Remove exactly this vif's routes, proxy entries and addresses; a vanished vif is fine."""
    ctx = run.ctx
    assert ctx is not None
    dev = net.link(ctx.dev)
    for item in ctx.ip:
        if dev is not None:
            delete_host_route(net, item, dev.index, metric)
        proxied = _proxied_address(item)
        if netdev is not None and proxied:
            delete_proxy_neighbour(net, proxied, netdev.index)
    if dev is None:
        run.log.debug(f"{ctx.dev} is already gone")
    else:
        main_ips = [primary_address(net, netdev, f) for f in (AF_INET, AF_INET6)] if netdev is not None else []
        for address in filter(None, main_ips):
            delete_host_address(net, dev, address)
        if dev.up:
            net.set_link(dev, state="down")
    update_vif_rules(_vif_firewall(run), False, settings_from(ctx.variables), run.log)
    call_hooks(run.script_dir, "vif", "post", hook_variables(run, netdev=netdev.name if netdev else ""))


def _proxied_address(item: str) -> str | None:
    """The IPv6 host address dom0 answers neighbour solicitations for on netdev (proxy NDP), if any."""
    address, prefixlen = split_address(item)
    return address if family_of(address) == AF_INET6 and prefixlen == 128 else None


def _vif_firewall(run: Run) -> VifFirewall:
    ctx = run.ctx
    assert ctx is not None
    return VifFirewall(dev=ctx.dev, kind="route", mac=ctx.mac, ips=tuple(ctx.ip))
