"""vif-nat: a guest NIC on dom0's private NAT network (router address, host route, DHCP entry)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from typing import TextIO

from ..core.errors import HotplugError, InputError
from ..core.files import state_dir
from ..core.lock import DEFAULT_LOCK_DIR, hotplug_lock
from ..dhcp import DhcpHost, dhcp_mode, shell_word
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
from ..netlink.address import delete_host_address, ensure_host_address
from ..netlink.link import Link, Net
from ..netlink.route import delete_host_route, replace_host_route
from ..xen.context import read_xs
from ..xen.natplan import NatPlan, nat_plan

USAGE = """usage: vif-nat online|offline type_if=vif | add|remove type_if=tap [dhcp=no|yes|isc] [ip=A]
Puts a guest NIC on dom0's private NAT network: the router address (the guest's
last octet +127, or -127 above 127) on the vif, a host route to the guest
(default address 10.<domid/256>.<domid%256>.<handle+1>), proxy_arp, and with
dhcp=yes (dnsmasq) or dhcp=isc (ISC dhcpd) a fixed DHCP entry for host dom<domid>[-<n>]."""


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Entry point: ``vif-nat online|offline type_if=vif`` or ``add|remove type_if=tap``."""
    return run_vif_script(argv, env, stderr, _vif_nat)


def _vif_nat(run: Run) -> None:
    ctx = run.ctx
    mode = dhcp_mode(ctx.variables)
    if mode == "isc":  # the name goes into dhcpd's arguments file, which its init script sources as shell
        shell_word(ctx.dev, "vif name")
    domid = _xs_int(run, "frontend-id", ctx.domid)
    vifid = _xs_int(run, "handle", ctx.devid) + 1
    plan = nat_plan(ctx.ip, domid, vifid)
    if ctx.type_if == "tap":
        # Upstream configures nothing for the emulated NIC (its case covers online|offline only).
        if ctx.plugging:
            with run.transaction(_success(run)) as tx:
                install_firewall(run, tx, _vif_firewall(run, plan))
                tx.finish_pending()
                run_post_hooks(run, **_hook_extra(run, plan))
        else:
            remove_firewall(run, _vif_firewall(run, plan))
            run_post_hooks(run, **_hook_extra(run, plan))
        return
    with Net() as net:
        if ctx.plugging:
            plug(run, net, plan, mode)
        else:
            unplug(run, net, plan, mode)
            run.log.debug(_success(run))


def _xs_int(run: Run, key: str, fallback: int | None) -> int:
    """Upstream's fatal ``xenstore_read`` of a numeric backend key.

    Offline of a backend directory already torn down falls back to the id in
    the backend path, so the guest's DHCP entry is still removed.
    """
    path = run.ctx.key(key)
    value = read_xs(run.xs, path, "") or ""
    if not value and not run.ctx.plugging and fallback is not None:
        return fallback
    if not value:
        raise HotplugError(f"xenstore-read {path} failed.")
    if not value.isdigit():
        raise InputError(f"Invalid {key} {value!r} in {path}")
    return int(value)


def plug(run: Run, net: Net, plan: NatPlan, mode: str) -> None:
    """Firewall, up, router address, host route, proxy_arp, DHCP entry, hooks: one transaction."""
    with run.transaction(_success(run)) as tx:
        dev = ensure_vif_name(net, run, tx)
        install_firewall(run, tx, _vif_firewall(run, plan))  # before the link is up and routed
        bring_up(net, dev, tx)
        if ensure_host_address(net, dev, plan.router):
            tx.push(f"removing {plan.router} from {dev.name}", partial(delete_host_address, net, dev, plan.router))
        replace_host_route(net, plan.guest, dev, plan.router, 0)
        tx.push(f"removing route {plan.guest}", partial(delete_host_route, net, plan.guest, dev.index, 0))
        enable_proxy_arp(dev, tx)
        if mode != "no":
            update_dhcp_entry(run, dev, plan, mode, True)
            tx.push("removing the DHCP entry", partial(update_dhcp_entry, run, dev, plan, mode, False))
        tx.finish_pending()
        run_post_hooks(run, **_hook_extra(run, plan))


def unplug(run: Run, net: Net, plan: NatPlan, mode: str) -> None:
    """DHCP entry, route, router address, down; a vanished vif is fine."""
    ctx = run.ctx
    dev = net.link(ctx.dev)
    if mode != "no":
        update_dhcp_entry(run, dev, plan, mode, False)
    if dev is None:
        run.log.debug(f"{ctx.dev} is already gone")
    else:
        delete_host_route(net, plan.guest, dev.index, 0)
        delete_host_address(net, dev, plan.router)
        take_down(net, dev)
    remove_firewall(run, _vif_firewall(run, plan))
    run_post_hooks(run, **_hook_extra(run, plan))


def update_dhcp_entry(run: Run, dev: Link | None, plan: NatPlan, mode: str, present: bool) -> None:
    """Add or remove the guest's fixed DHCP entry, under upstream's ``vif-nat-dhcp`` lock."""
    ctx = run.ctx
    if present and ctx.mac is None:
        raise HotplugError(f"xenstore-read {ctx.key('mac')} failed. (dhcp={mode} writes a host entry by the "
                           "guest's MAC: give the vif a mac= in its xl spec, or set dhcp=no)")
    # Removal matches by hostname, so it works without the mac key.
    host = DhcpHost(hostname=plan.hostname, mac=ctx.mac or "", address=plan.guest, router=plan.router)
    conf = run.conf
    with hotplug_lock("vif-nat-dhcp", run.env.get("XENSCRIPTS_LOCK_DIR", DEFAULT_LOCK_DIR)):
        if mode == "yes":
            from ..dhcp.dnsmasq import DnsmasqFiles, update_host

            update_host(DnsmasqFiles.under(state_dir(run.env, conf)), host, present, run.log.debug)
        else:
            from ..dhcp.isc import update_isc_host

            update_isc_host(run.env, conf, host, dev.name if dev else ctx.dev, present, run.log.debug)


def _success(run: Run) -> str:
    return f"Successful vif-nat {run.ctx.command} for {run.ctx.dev}."


def _hook_extra(run: Run, plan: NatPlan) -> dict[str, str]:
    """What vif-nat's hooks see beyond the common variables."""
    return {"vif_ip": plan.guest, "router_ip": plan.router, "hostname": plan.hostname,
            "dhcp": run.ctx.variables.get("dhcp", "no")}


def _vif_firewall(run: Run, plan: NatPlan) -> VifFirewall:
    ctx = run.ctx
    return VifFirewall(dev=ctx.dev, kind="nat", mac=ctx.mac, ips=(plan.guest,))

