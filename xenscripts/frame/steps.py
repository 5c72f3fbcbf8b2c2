"""Steps every vif script shares: naming the vif, and the variables hooks see."""

from __future__ import annotations

from collections.abc import Callable

from ..core.errors import HotplugError
from ..netlink.link import Link, Net, Undo
from ..xen.context import VifContext
from .vif import Run


def ensure_vif_name(net: Net, ctx: VifContext, undo: Undo, debug: Callable[[str], None]) -> Link:
    """The vif's link, renamed to ``vifname`` if one is set (on online/add).

    The original name is kept as an altname, so a second online finds the
    renamed vif instead of failing on the name it already carries.
    """
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
        undo.push(f"bringing {ctx.vif} back up", lambda: net.set_link(link, state="up"))
    net.set_link(link, ifname=ctx.vifname)
    undo.push(f"renaming {ctx.vifname} back to {ctx.vif}", lambda: net.set_link(link, ifname=ctx.vif))
    renamed = net.link_by_index(link.index)
    if renamed is None:
        raise HotplugError(f"{ctx.vifname} disappeared while it was being renamed")
    try:
        net.add_altname(renamed, ctx.vif)
        undo.push(f"removing altname {ctx.vif}", lambda: net.del_altname(renamed, ctx.vif))
    except HotplugError as e:
        debug(str(e))
    return net.link_by_index(link.index) or renamed


def hook_variables(run: Run, **extra: str) -> dict[str, str]:
    """The variables upstream's sourced hooks can see (hooks.call_hooks keeps the documented ones)."""
    ctx = run.ctx
    assert ctx is not None
    variables = {k: v for k, v in run.env.items() if k == "XENSTORED_PATH"}
    variables.update(ctx.variables)
    variables.update(command=ctx.command, type_if=ctx.type_if, dev=ctx.dev, vif=ctx.vif,
                     XENBUS_PATH=ctx.backend, ip=" ".join(ctx.ip), vifname=ctx.vifname or "",
                     mac=ctx.mac or "", **extra)
    return variables
