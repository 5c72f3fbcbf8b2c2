"""Steps every vif script shares, each pushing its inverse on the run's transaction."""

from __future__ import annotations

from functools import partial

from ..core.errors import HotplugError
from ..firewall import VifFirewall, update_vif_rules
from ..netlink.link import Link, Net
from ..netlink.sysctl import ensure_sysctl, write_sysctl
from ..xen.hooks import call_hooks
from .vif import Run, Transaction


def ensure_vif_name(net: Net, run: Run, tx: Transaction) -> Link:
    """The vif's link, renamed to ``vifname`` if one is set (on online/add).

    The original name is kept as an altname, so a second online finds the
    renamed vif instead of failing on the name it already carries.
    """
    ctx = run.ctx
    link = net.link(ctx.vif)
    if link is None:
        raise HotplugError(f"Cannot find interface {ctx.vif}")
    if ctx.vifname is None or link.name == ctx.vifname:
        return link
    if net.link(ctx.vifname) is not None:
        raise HotplugError(
            f"Cannot rename interface {ctx.vif}. An interface with name {ctx.vifname} already exists.")
    if link.up:
        net.set_link(link, state="down")
        tx.push(f"bringing {ctx.vif} back up", partial(net.set_link, link, state="up"))
    net.set_link(link, ifname=ctx.vifname)
    tx.push(f"renaming {ctx.vifname} back to {ctx.vif}", partial(net.set_link, link, ifname=ctx.vif))
    renamed = net.link_by_index(link.index)
    if renamed is None:
        raise HotplugError(f"{ctx.vifname} disappeared while it was being renamed")
    try:
        net.add_altname(renamed, ctx.vif)
        tx.push(f"removing altname {ctx.vif}", partial(net.del_altname, renamed, ctx.vif))
    except HotplugError as e:
        run.log.debug(str(e))
    return net.link_by_index(link.index) or renamed


def install_firewall(run: Run, tx: Transaction, firewall: VifFirewall) -> None:
    """The vif's rules, first of all (antispoof holds before the link comes up); removed again on failure."""
    update_vif_rules(firewall, True, run.settings, run.log, tx.pending)
    tx.push("firewall rules", partial(update_vif_rules, firewall, False, run.settings, run.log))


def remove_firewall(run: Run, firewall: VifFirewall) -> None:
    """Every rule of the vif (what its online remembered), whether or not the vif still exists."""
    update_vif_rules(firewall, False, run.settings, run.log)


def bring_up(net: Net, dev: Link, tx: Transaction) -> None:
    if not dev.up:
        net.set_link(dev, state="up")
        tx.push(f"bringing {dev.name} down", partial(net.set_link, dev, state="down"))


def take_down(net: Net, dev: Link) -> None:
    if dev.up:
        net.set_link(dev, state="down")


def enable_proxy_arp(dev: Link, tx: Transaction) -> None:
    """``proxy_arp=1`` on the vif, the old value restored on failure."""
    key = f"ipv4/conf/{dev.name}/proxy_arp"
    old = ensure_sysctl(key, "1")
    if old is not None:
        tx.push(f"restoring proxy_arp of {dev.name}", partial(write_sysctl, key, old))


def run_post_hooks(run: Run, **extra: str) -> None:
    """The ``vif-post.d`` hooks with the variables upstream's sourced hooks can see."""
    call_hooks(run.script_dir, "vif", "post", hook_variables(run, **extra))


def hook_variables(run: Run, **extra: str) -> dict[str, str]:
    """The variables upstream's sourced hooks can see (hooks.call_hooks keeps the documented ones)."""
    ctx = run.ctx
    variables = {k: v for k, v in run.env.items() if k == "XENSTORED_PATH"}
    variables.update(ctx.variables)
    variables.update(command=ctx.command, type_if=ctx.type_if, dev=ctx.dev, vif=ctx.vif,
                     XENBUS_PATH=ctx.backend, ip=" ".join(ctx.ip), vifname=ctx.vifname or "",
                     mac=ctx.mac or "", **extra)
    return variables
