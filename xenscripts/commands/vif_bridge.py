"""vif-bridge: put a guest's vif on its bridge (online/add) or take it off (offline/remove)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError, InputError
from ..firewall import VifFirewall
from ..frame.steps import ensure_vif_name, install_firewall, remove_firewall, run_post_hooks
from ..frame.vif import Run, Transaction, run_vif_script, write
from ..netlink.link import Link, Net
from ..netlink.port import ensure_bridge_port, release_bridge_port
from ..xen.context import read_xs
from ..xen.vlanspec import VlanSpec, compress, parse_bridge_string, parse_vlan_key

USAGE = """\
usage: {name} online|offline type_if=vif   (libxl, per PV vif; XENBUS_PATH, vif set)
       {name} add|remove type_if=tap       (libxl, per emulated NIC; INTERFACE set)

Puts a guest's vif on its bridge (xenstore `bridge`, else argv `bridge=`,
else the first bridge), sets its MTU, firewall rules and hooks, and writes
hotplug-status. Keys: bridge, ip, mac, mtu, vifname, vlan (xenstore); firewall=
auto|nft|legacy|none, antispoof=no|yes (argv, environment or
/etc/xen/xenscripts.conf). Options: --help, --version.
"""


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Entry point: ``vif-bridge online|offline type_if=vif`` or ``add|remove type_if=tap``."""
    return run_vif_script(argv, env, stderr, _vif_bridge)


def _vif_bridge(run: Run) -> None:
    ctx = run.ctx
    bridge_name = read_xs(run.xs, ctx.key("bridge"), ctx.variables.get("bridge", "")) or ""
    if bridge_name:
        validate.ifname(bridge_name, "bridge name")
    with Net() as net:
        if ctx.plugging:
            vlan = _vlan_key(run)
            plug(run, net, find_bridge(net, bridge_name), vlan)
        else:
            unplug(run, net, bridge_name)
            run.log.debug(_success(run, bridge_name))


def find_bridge(net: Net, name: str) -> Link:
    """The bridge to use: as named (with the xenbrN -> ethN fallback), else discovered."""
    if not name:
        name = net.first_bridge() or ""
        if not name:
            raise HotplugError("Could not find bridge, and none was specified (dom0 has no bridge: create one "
                               "with 'network-bridge start bridge=xenbr0 netdev=eth0', or set bridges= in "
                               "/etc/xen/xenscripts.conf and start xenscripts-network.service)")
    validate.ifname(name, "bridge name")
    bridge = net.link(name)
    if bridge is None and name.startswith("xenbr"):
        # Old configs name xenbrN; "new style" hosts bridge on ethN itself.
        fallback = net.link("eth" + name[len("xenbr"):])
        if fallback is not None and fallback.is_bridge:
            bridge = fallback
    if bridge is None:
        raise HotplugError(f"Could not find bridge device {name}{_vlan_hint(net, name) or f' ({_bridges_here(net)})'}")
    if not bridge.is_bridge:
        raise HotplugError(f"{name} is not a bridge ({_bridges_here(net)})")
    return bridge


def _bridges_here(net: Net) -> str:
    """The bridges dom0 has, for an error message: what to put in ``bridge=`` instead."""
    names = net.bridge_names()
    if not names:
        return "dom0 has no bridge: create one with 'network-bridge start bridge=<name> netdev=<nic>'"
    return f"bridges in dom0: {', '.join(names)}; set bridge=<one of them> in the vif spec"


def _vlan_key(run: Run) -> tuple[VlanSpec, str] | None:
    """The backend's ``vlan`` key (libxl's syntax, strictly) and its name for messages; None when unset."""
    key = run.ctx.key("vlan")
    value = read_xs(run.xs, key, "")
    if not value:
        return None
    spec = parse_vlan_key(value, key)
    if run.settings.antispoof and spec.tagged:  # the guest's tagged frames would all be dropped, silently
        raise InputError(f"antispoof=yes drops every tagged frame a guest sends, so {key} {value!r} cannot "
                         f"carry its tagged VLANs ({compress(spec.tagged)}): give this vif antispoof=no, "
                         "or only untagged VLANs (vlan=N)")
    return spec, f"{key} {value!r}"


def _vlan_hint(net: Net, name: str) -> str:
    """Upstream's error for ``bridge=br0.10``, with what it probably meant (a vif-openvswitch bridge string)."""
    try:
        base, tag, trunks = parse_bridge_string(name)
    except InputError:
        return ""
    base_link = net.link(base) if (tag is not None or trunks) else None
    if base_link is None or not base_link.is_bridge:
        return ""
    return (f" (BRIDGE.TAG is vif-openvswitch's syntax; on the Linux bridge {base}, a guest's VLAN "
            f"is the vif's vlan key: vif=['bridge={base},vlan={tag if tag is not None else trunks[0]}'])")


def plug(run: Run, net: Net, bridge: Link, vlan: tuple[VlanSpec, str] | None = None) -> None:
    """Rename, firewall (before the port comes up), MTU, VLANs, enslave, frontend MTU, hooks: one transaction."""
    ctx = run.ctx
    with run.transaction(_success(run, bridge.name)) as tx:
        dev = ensure_vif_name(net, run, tx)
        mtu = _wanted_mtu(run, bridge)
        install_firewall(run, tx, _vif_firewall(run, bridge.name))
        ensure_bridge_port(net, dev, bridge, mtu, tx, run.log.debug,
                           before_up=_port_vlans(net, bridge, dev, vlan, tx, run.log.debug))
        if ctx.type_if == "vif" and ctx.frontend:
            write(run, f"{ctx.frontend}/mtu", str(mtu))
        tx.finish_pending()  # the hooks see the rules in place
        run_post_hooks(run, bridge=bridge.name)


def _port_vlans(net: Net, bridge: Link, dev: Link, vlan: tuple[VlanSpec, str] | None, tx: Transaction,
                debug: Callable[[str], None]) -> Callable[[], None] | None:
    """The ``vlan`` key as bridge VLAN filtering on the port (netlink/bridgevlan.py), or nothing."""
    if vlan is None:
        return None
    from ..netlink.bridgevlan import ensure_port_vlans

    spec, what = vlan
    return partial(ensure_port_vlans, net, bridge, dev, spec, what, tx, debug)


def unplug(run: Run, net: Net, bridge_name: str) -> None:
    """Take the vif down and off its bridge; a vanished vif or bridge is not an error."""
    ctx = run.ctx
    dev = net.link(ctx.dev)
    if dev is None:
        run.log.debug(f"{ctx.dev} is already gone")
        remove_firewall(run, _vif_firewall(run, bridge_name))  # its rules must not outlive it
        return
    bridge = net.link(bridge_name) if bridge_name else None
    if bridge_name and bridge is None:
        run.log.debug(f"bridge {bridge_name} is already gone")
    release_bridge_port(net, dev, bridge, run.log.debug)
    remove_firewall(run, _vif_firewall(run, bridge_name))
    run_post_hooks(run, bridge=bridge_name)


def _success(run: Run, bridge: str) -> str:
    return f"Successful vif-bridge {run.ctx.command} for {run.ctx.dev}, bridge {bridge or '?'}."


def _wanted_mtu(run: Run, bridge: Link) -> int:
    """The MTU from the backend's ``mtu`` key, else the bridge's."""
    value = read_xs(run.xs, run.ctx.key("mtu"), "")
    if value:
        return validate.mtu(value, f"MTU in {run.ctx.key('mtu')}")
    run.log.debug(f"{bridge.name} MTU is {bridge.mtu}")
    return bridge.mtu


def _vif_firewall(run: Run, bridge: str | None) -> VifFirewall:
    ctx = run.ctx
    return VifFirewall(dev=ctx.dev, kind="bridge", mac=ctx.mac, ips=tuple(ctx.ip), bridge=bridge or None)
