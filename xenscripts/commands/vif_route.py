"""vif-route: a guest NIC as a routed point-to-point link (host routes in dom0, proxy ARP/NDP)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError
from ..firewall import VifFirewall
from ..frame.steps import (
    bring_up,
    enable_proxy_arp,
    ensure_vif_name,
    install_firewall,
    remove_firewall,
    run_post_hooks,
    take_down,
)
from ..frame.vif import Run, run_vif_script
from ..netlink.address import (
    AF_INET,
    AF_INET6,
    delete_host_address,
    ensure_host_address,
    family_of,
    primary_address,
)
from ..netlink.link import Link, Net
from ..netlink.neighbour import delete_proxy_neighbour, ensure_proxy_neighbour
from ..netlink.route import delete_host_route, replace_host_route, split_address
from ..netlink.sysctl import read_sysctl

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
    netdev_name = validate.ifname(ctx.variables.get("netdev") or "eth0", "netdev")
    metric = 1 if ctx.type_if == "tap" else 2
    with Net() as net:
        netdev = net.link(netdev_name)
        if ctx.plugging:
            uplink, main_ip = dom0_address(run, net, netdev_name, netdev)
            plug(run, net, uplink, main_ip, metric)
        else:
            unplug(run, net, netdev, metric)
            run.log.debug(f"Successful vif-route {ctx.command} for {ctx.dev}.")


def dom0_address(run: Run, net: Net, name: str, netdev: Link | None) -> tuple[Link, str]:
    """dom0's IPv4 address on netdev *name*, with upstream's message (and what is wrong) when it has none."""
    address = primary_address(net, netdev) if netdev is not None else None
    if netdev is None or not address:
        why = "it does not exist" if netdev is None else "it has no IPv4 address"
        # Upstream's text, double space included (fatal joins its two arguments with a space).
        raise HotplugError(f"{name} is not up.  Bring it up or specify another "
                           f"interface with  netdev=<if> as a parameter to {run.ctx.script}. ({why}; in an xl "
                           "vif spec the key is gatewaydev=<if>; in /etc/xen/xl.conf, vif.default.gatewaydev)")
    return netdev, address


def plug(run: Run, net: Net, netdev: Link, main_ip: str, metric: int) -> None:
    """Firewall, address, proxy_arp, up, routes, proxy NDP, hooks: one transaction."""
    ctx = run.ctx
    with run.transaction(f"Successful vif-route {ctx.command} for {ctx.dev}.") as tx:
        dev = ensure_vif_name(net, run, tx)
        install_firewall(run, tx, _vif_firewall(run))  # before the link is up and routed
        main_ip6 = primary_address(net, netdev, AF_INET6)
        for address in filter(None, (main_ip, main_ip6)):
            if ensure_host_address(net, dev, address):
                tx.push(f"removing {address} from {dev.name}", partial(delete_host_address, net, dev, address))
        enable_proxy_arp(dev, tx)
        bring_up(net, dev, tx)
        for item in ctx.ip:
            v6 = family_of(split_address(item)[0]) == AF_INET6
            replace_host_route(net, item, dev, main_ip6 if v6 else main_ip, metric)
            tx.push(f"removing route {item}", partial(delete_host_route, net, item, dev.index, metric))
            proxied = _proxied_address(item)
            if proxied:
                if read_sysctl(f"ipv6/conf/{netdev.name}/proxy_ndp") == "0":
                    run.log.warning(f"proxy_ndp is off on {netdev.name}: the LAN cannot reach {proxied} "
                                    "until network-route start ipv6=yes")
                ensure_proxy_neighbour(net, proxied, netdev)
                tx.push(f"removing proxy entry {proxied}",
                        partial(delete_proxy_neighbour, net, proxied, netdev.index))
        tx.finish_pending()
        run_post_hooks(run, main_ip=main_ip, netdev=netdev.name)


def unplug(run: Run, net: Net, netdev: Link | None, metric: int) -> None:
    """Remove exactly this vif's routes, proxy entries and addresses; a vanished vif is fine."""
    ctx = run.ctx
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
        take_down(net, dev)
    remove_firewall(run, _vif_firewall(run))
    run_post_hooks(run, netdev=netdev.name if netdev else "")


def _proxied_address(item: str) -> str | None:
    """The IPv6 host address dom0 answers neighbour solicitations for on netdev (proxy NDP), if any."""
    address, prefixlen = split_address(item)
    return address if family_of(address) == AF_INET6 and prefixlen == 128 else None


def _vif_firewall(run: Run) -> VifFirewall:
    ctx = run.ctx
    return VifFirewall(dev=ctx.dev, kind="route", mac=ctx.mac, ips=tuple(ctx.ip))
