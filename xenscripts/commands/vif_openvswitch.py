"""vif-openvswitch: put a guest's vif on an Open vSwitch bridge (online/add) or take it off (offline/remove)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TextIO

from ..core import validate
from ..core.errors import HotplugError, InputError
from ..core.request import current
from ..frame.steps import bring_up, ensure_vif_name, run_post_hooks
from ..frame.vif import Run, Transaction, run_vif_script, write
from ..netlink.link import DUMMY_MAC, Link, Net
from ..xen.context import read_xs
from ..xen.vlanspec import parse_bridge_string, port_columns

USAGE = """\
usage: {name} online|offline type_if=vif   (libxl, per PV vif; XENBUS_PATH, vif set)
       {name} add|remove type_if=tap       (libxl, per emulated NIC; INTERFACE set)

Puts a guest's vif on an Open vSwitch bridge: xenstore `bridge` (else argv
`bridge=`) as BRIDGE[.TAG][:TRUNK[:TRUNK...]], or the backend's `vlan` key
(10, 10p/20, 10p/100+10x4). Sets external-ids xen-vm-name, xen-vm-uuid and
attached-mac, the MTU, antispoof=yes OpenFlow flows, runs vif-post hooks and
writes hotplug-status. The database: $OVS_RUNDIR/db.sock, else ovsdb= in
/etc/xen/xenscripts.conf, else /var/run/openvswitch/db.sock.
Options: --help, --version.
"""
FLOWS_ID = "xenscripts-antispoof-cookie"  # on the Interface: its flows' cookie while antispoof holds, else "none"
OVS_TIMEOUT = 10.0  # one database change, ovs-vswitchd's reconfiguration included (ovs-vsctl: 30 s)
ROLLBACK_WAIT = 3.0  # the same, undone (ovs-vswitchd applies a change in milliseconds when it runs)


@dataclass(frozen=True)
class OvsTarget:
    """Where the vif goes and how: the bridge, its VLAN columns, the external ids."""

    bridge: str
    tag: int | None
    trunks: tuple[int, ...]
    vlan_mode: str | None
    external_ids: dict[str, str]


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """Entry point: ``vif-openvswitch online|offline type_if=vif`` or ``add|remove type_if=tap``."""
    return run_vif_script(argv, env, stderr, _vif_openvswitch)


def _vif_openvswitch(run: Run) -> None:
    ctx = run.ctx
    raw = read_xs(run.xs, ctx.key("bridge"), ctx.variables.get("bridge", "")) or ""
    settings = run.settings
    if ctx.plugging:
        target = read_target(run, raw)
        if settings.antispoof and not ctx.mac:
            raise InputError(f"antispoof=yes needs the guest's MAC address, and {ctx.dev} has none")
        db = _db(run)
        if not db.has_bridge(target.bridge):
            raise HotplugError(f"Open vSwitch has no bridge {target.bridge}")
        with Net() as net:
            plug(run, net, db, target, settings.antispoof)
    else:
        run.log.debug(_success(run, unplug(run, raw)))


def _success(run: Run, bridge: str | None) -> str:
    return f"Successful vif-openvswitch {run.ctx.command} for {run.ctx.dev}, bridge {bridge or '?'}."


def read_target(run: Run, raw: str) -> OvsTarget:
    """The bridge string and the ``vlan`` key, parsed and checked; upstream's external ids."""
    ctx = run.ctx
    bridge, tag, trunks, mode = port_columns(raw, run.xs.read(ctx.key("vlan")) or "", ctx.key("vlan"))
    return OvsTarget(bridge=bridge, tag=tag, trunks=trunks, vlan_mode=mode, external_ids=external_ids(run))


def external_ids(run: Run) -> dict[str, str]:
    """xen-vm-name, xen-vm-uuid, attached-mac, read where upstream reads them (and as strictly)."""
    ctx = run.ctx

    def need(path: str) -> str:
        value = run.xs.read(path)
        if not value:
            raise HotplugError(f"xenstore-read {path} failed.")
        return value

    frontend_id = need(ctx.key("frontend-id"))
    vm = need(f"/local/domain/{frontend_id}/vm")
    return {"xen-vm-name": need(f"{vm}/name"), "xen-vm-uuid": need(f"{vm}/uuid"),
            "attached-mac": need(ctx.key("mac"))}


def db_path(run: Run) -> str:
    from ..xen.ovsdb import db_socket

    return db_socket(run.env, run.conf)


def _db(run: Run):
    from ..xen import ovsdb

    return ovsdb.connect(db_path(run), timeout=_timeout())


def _timeout() -> float:
    return max(0.5, min(OVS_TIMEOUT, current().time_left()))


def plug(run: Run, net: Net, db, target: OvsTarget, antispoof: bool) -> None:
    """setup_virtual_bridge_port, the port in one transaction, flows, link up; undone on any failure."""
    from ..xen.ovsdb import PortSpec

    ctx = run.ctx
    with run.transaction(_success(run, target.bridge)) as undo:
        dev = ensure_vif_name(net, run, undo)
        existing = db.port(dev.name)
        stale_flows = not antispoof and existing is not None and _has_flows(existing)
        ids = {**target.external_ids, **({FLOWS_ID: f"{_cookie(run, dev.name):#x}"} if antispoof else {}),
               **({FLOWS_ID: "none"} if stale_flows else {})}
        spec = PortSpec(bridge=target.bridge, name=dev.name, tag=target.tag, trunks=target.trunks,
                        vlan_mode=target.vlan_mode, external_ids=ids)
        mtu = _wanted_mtu(run, net, target.bridge)
        in_place = spec.matches(existing)
        _setup_virtual_bridge_port(net, dev, mtu, in_place, undo, run.log.debug)
        if not in_place:
            run.log.debug(f"port {dev.name} on {target.bridge}: tag {target.tag}, trunks {list(target.trunks)}, "
                          f"vlan_mode {target.vlan_mode or '(default)'}")
            # ovs-vswitchd, letting go of a device, puts back the flags it found: the link state it had
            # before the port is set again once the port is restored (undo runs newest first). Both are
            # recorded before the change: a change the database took but ovs-vswitchd never applied (it is
            # gone: the wait for it times out) is undone too.
            state = "up" if (net.link_by_index(dev.index) or dev).up else "down"
            undo.push(f"{dev.name} {state} again", partial(net.set_link, dev, state=state))
            undo.push(f"restoring port {dev.name}", lambda: _restore_port(db, dev.name, existing))
        db.ensure_port(spec, _timeout())
        if antispoof:
            _lock_port(run, db, dev.name, target, undo)
        elif stale_flows and existing is not None and existing.bridge:
            _unlock_port(run, existing.bridge, dev.name)
        if ctx.type_if == "vif" and ctx.frontend and mtu is not None:
            write(run, f"{ctx.frontend}/mtu", str(mtu))
        bring_up(net, net.link_by_index(dev.index) or dev, undo)
        run_post_hooks(run, bridge=target.bridge)


def _setup_virtual_bridge_port(net: Net, dev: Link, mtu: int | None, in_place: bool, undo: Transaction,
                               debug) -> None:
    """Upstream's down, fe:ff MAC, flush (and our MTU), skipped when all of it is already so."""
    addresses = net.has_routable_addresses(dev.index)
    wrong_mtu = mtu is not None and dev.mtu != mtu
    if in_place and dev.address == DUMMY_MAC and not addresses and not wrong_mtu:
        return
    if dev.up:
        net.set_link(dev, state="down")
        undo.push(f"bringing {dev.name} back up", lambda: net.set_link(dev, state="up"))
    if dev.address != DUMMY_MAC:
        try:
            net.set_link(dev, address=DUMMY_MAC)  # upstream: || true
            undo.push(f"restoring MAC of {dev.name}", lambda: net.set_link(dev, address=dev.address))
        except HotplugError as e:
            debug(str(e))
    if addresses:
        net.flush_addresses(dev)
    if wrong_mtu:
        debug(f"setting {dev.name} MTU to {mtu}")
        net.set_link(dev, mtu=mtu)
        undo.push(f"restoring MTU of {dev.name}", lambda: net.set_link(dev, mtu=dev.mtu))


def _restore_port(db, name: str, before) -> None:
    """Rollback: the port as it was (none: deleted). The wait for ovs-vswitchd is short: when it applied
    nothing in the forward step (it is gone), waiting the whole time again would only delay the error."""
    from ..xen.ovsdb import PortSpec

    timeout = min(ROLLBACK_WAIT, _timeout())
    if before is None or before.bridge is None:
        db.delete_port(name, timeout)
    else:
        db.ensure_port(PortSpec(bridge=before.bridge, name=name, tag=before.tag, trunks=before.trunks,
                                vlan_mode=before.vlan_mode, external_ids=before.external_ids), timeout)


def _cookie(run: Run, dev: str) -> int:
    from ..firewall import openflow

    return openflow.cookie(run.ctx.domid, run.ctx.devid, dev, tap=run.ctx.type_if == "tap")


def _has_flows(port) -> bool:
    """The port was locked by antispoof=yes (its Interface carries the flows' cookie)."""
    return str(port.external_ids.get(FLOWS_ID, "")).startswith("0x")


def _unlock_port(run: Run, bridge: str, dev: str) -> None:
    """Delete the vif's antispoof flows by cookie (a vanished bridge or switch is no error)."""
    from ..firewall import openflow

    try:
        openflow.remove(bridge, _cookie(run, dev), run.env)
        run.log.debug(f"antispoof: flows of {dev} removed from {bridge}")
    except HotplugError as e:
        run.log.debug(f"ovs: flows of {dev}: {e}")


def _lock_port(run: Run, db, dev: str, target: OvsTarget, undo: Transaction) -> None:
    """antispoof=yes: the port's flows, in place before its link comes up; tagged frames only on a port
    given VLANs (one without is, to OVS, a trunk of every VLAN)."""
    from ..firewall import openflow

    ctx = run.ctx
    bridge = target.bridge
    assert ctx.mac is not None  # antispoof=yes without a mac key was refused before
    ofport = db.wait_ofport(dev, _timeout())
    vif_cookie = _cookie(run, dev)
    openflow.install(bridge, ofport, ctx.mac, tuple(ctx.ip), vif_cookie, run.env,
                     untagged_only=target.tag is None and not target.trunks)
    run.log.debug(f"antispoof: OpenFlow flows for {dev} (port {ofport}) on {bridge}, cookie {vif_cookie:#x}")
    undo.push(f"removing flows of {dev}", lambda: openflow.remove(bridge, vif_cookie, run.env))


def _wanted_mtu(run: Run, net: Net, bridge: str) -> int | None:
    """The backend's ``mtu`` key, else the bridge's (its internal port in dom0), else leave it."""

    value = read_xs(run.xs, run.ctx.key("mtu"), "")
    if value:
        return validate.mtu(value, f"MTU in {run.ctx.key('mtu')}")
    link = net.link(bridge)
    return link.mtu if link is not None else None


def unplug(run: Run, raw: str) -> str:
    """``--if-exists del-port``, the vif's flows, link down: every piece tolerant of being gone."""
    from ..xen import ovsdb

    ctx = run.ctx

    dev = ctx.dev
    bridge = ""
    try:
        bridge = parse_bridge_string(raw)[0] if raw else ""
    except InputError:
        pass
    locked = True  # unless the database shows the port had no flows, look for them
    try:
        db = ovsdb.connect(db_path(run), timeout=_timeout())
        # waits for ovs-vswitchd, as ovs-vsctl does: when it lets go of the device it puts back the flags
        # it found (up), so a link-down sent before that would be undone (the tap differential saw it)
        before = db.delete_port(dev, _timeout())
        if before is not None:
            bridge, locked = before.bridge or bridge, _has_flows(before)
    except HotplugError as e:
        run.log.debug(f"ovs: {dev}: {e}")
    if bridge and locked:
        _unlock_port(run, bridge, dev)
    with Net() as net:
        link = net.link(dev)
        if link is None:
            run.log.debug(f"{dev} is already gone")
        elif link.up:
            try:
                net.set_link(link, state="down")
            except HotplugError as e:
                run.log.debug(str(e))
    run_post_hooks(run, bridge=bridge)
    return bridge
