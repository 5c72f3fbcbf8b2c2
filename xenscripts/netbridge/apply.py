"""Execute a plan of ``Step``s over netlink; on any failure undo the done steps, newest first (``netlink.link.Undo``).

Every verb is idempotent: adding what is there or removing what is gone is
not an error, so an undo that meets a half-done step still converges.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

from ..core.errors import DeviceGone, HotplugError
from ..netlink.link import Undo, netlink_errors
from .observe import AF_INET, Address, Route
from .plan import Step

_GONE = (errno.EADDRNOTAVAIL, errno.ESRCH, errno.ENOENT, errno.ENODEV)


class StepFailed(HotplugError):
    """A plan step failed; the message names the step and says the host was put back."""


def netlink(what: str, tolerate: tuple[int, ...] = ()) -> AbstractContextManager[object]:
    """netlink_errors for a plan step: an errno in *tolerate* is success (already so); the step names itself."""
    return netlink_errors(what, tolerate, failed="")


class Applier:
    """Runs steps on one netlink socket; *firewall* does the firewall step (starting, nic, bridge)."""

    def __init__(self, ipr: Any, firewall: Callable[[bool, str, str], None]) -> None:
        self.ipr = ipr
        self.firewall = firewall

    def index(self, name: str) -> int:
        with netlink(f"looking up {name}"):
            found = self.ipr.link_lookup(ifname=name)
        if not found:
            raise DeviceGone(f"{name}: no such device")
        return found[0]

    def run(self, step: Step) -> None:
        getattr(self, f"_{step.verb}")(step.dev, **step.args)

    # -- links ---------------------------------------------------------
    def _create_bridge(self, dev: str, mac: str, mtu: int) -> None:
        with netlink(f"creating bridge {dev}", tolerate=(errno.EEXIST,)):
            self.ipr.link("add", ifname=dev, kind="bridge", br_stp_state=0, br_forward_delay=0)
        self.ipr_set(dev, f"setting MAC {mac} and MTU {mtu} on {dev}", address=mac, mtu=mtu)

    def _create_vlan(self, dev: str, parent: str, id: int, mtu: int | None, alias: str) -> None:
        from ..netlink.vlan import vlan_request

        request = vlan_request(dev, self.index(parent), id, mtu, alias)
        with netlink(f"creating VLAN device {dev} (needs the kernel's 8021q module)", tolerate=(errno.EEXIST,)):
            self.ipr.link("add", **request)

    def _delete_link(self, dev: str) -> None:
        with netlink(f"deleting {dev}", tolerate=_GONE):
            self.ipr.link("del", index=self.index(dev))

    def ipr_set(self, dev: str, what: str, **attrs: Any) -> None:
        with netlink(what):
            self.ipr.link("set", index=self.index(dev), **attrs)

    def _set_up(self, dev: str) -> None:
        self.ipr_set(dev, f"bringing {dev} up", state="up")

    def _set_down(self, dev: str) -> None:
        self.ipr_set(dev, f"taking {dev} down", state="down")

    def _rename(self, dev: str, name: str) -> None:
        self.ipr_set(dev, f"renaming {dev} to {name}", ifname=name)

    def _set_master(self, dev: str, master: str) -> None:
        self.ipr_set(dev, f"adding {dev} to {master}", master=self.index(master))

    def _set_nomaster(self, dev: str, master: str) -> None:
        self.ipr_set(dev, f"removing {dev} from {master}", master=0)

    def _set_tx_offload(self, dev: str, on: bool) -> None:
        from ..netlink.ethtool import set_tx_checksum

        set_tx_checksum(dev, on)

    def _keep_slaves(self, dev: str, slaves: list[str]) -> None:
        for slave in slaves:
            self.ipr_set(slave, f"keeping {slave} enslaved to {dev}", master=self.index(dev))

    def _firewall(self, dev: str, bridge: str, starting: bool) -> None:
        self.firewall(starting, dev, bridge)

    # -- addresses and routes -----------------------------------------
    def _add_addr(self, dev: str, address: dict[str, Any]) -> None:
        addr = Address(**address)
        with netlink(f"adding address {addr.cidr()} to {dev}", tolerate=(errno.EEXIST,)):
            self.ipr.addr("add", **address_request(addr, self.index(dev)))

    def _del_addr(self, dev: str, address: dict[str, Any]) -> None:
        addr = Address(**address)
        with netlink(f"removing address {addr.cidr()} from {dev}", tolerate=_GONE):
            self.ipr.addr("del", index=self.index(dev), address=addr.local, prefixlen=addr.prefixlen)

    def _add_route(self, dev: str, route: dict[str, Any]) -> None:
        r = Route(**route)
        with netlink(f"adding route {r.describe()} dev {dev}", tolerate=(errno.EEXIST,)):
            self.ipr.route("add", **route_request(r, self.index(dev)))

    def _del_route(self, dev: str, route: dict[str, Any]) -> None:
        r = Route(**route)
        with netlink(f"removing route {r.describe()} dev {dev}", tolerate=_GONE):
            self.ipr.route("del", **route_request(r, self.index(dev)))


def address_request(addr: Address, index: int) -> dict[str, Any]:
    """pyroute2 ``addr("add")`` arguments that recreate *addr* with its flags and remaining lifetimes."""
    from .observe import IFA_SETTABLE

    req: dict[str, Any] = {"index": index, "address": addr.local, "prefixlen": addr.prefixlen,
                           "family": addr.family}
    if addr.peer:
        req["local"], req["address"] = addr.local, addr.peer
    if addr.family == AF_INET:
        if addr.broadcast:
            req["broadcast"] = addr.broadcast
        if addr.label:
            req["label"] = addr.label
    flags = addr.flags & IFA_SETTABLE
    if flags:
        req["IFA_FLAGS"] = flags
    if addr.valid != 0xFFFFFFFF or addr.preferred != 0xFFFFFFFF:
        req["IFA_CACHEINFO"] = {"ifa_valid": addr.valid, "ifa_preferred": addr.preferred,
                                "cstamp": 0, "tstamp": 0}
    return req


def route_request(r: Route, index: int) -> dict[str, Any]:
    """pyroute2 ``route()`` arguments for *r* through link *index*."""
    req: dict[str, Any] = {"family": r.family, "dst_len": r.dst_len, "table": r.table, "oif": index,
                           "proto": r.proto, "scope": r.scope, "type": r.type, "tos": r.tos}
    if r.dst:
        req["dst"] = r.dst
    for key in ("gateway", "priority", "prefsrc"):
        if getattr(r, key) is not None:
            req[key] = getattr(r, key)
    return req


def apply_plan(applier: Applier, steps: list[Step], log: Callable[[str], None]) -> None:
    """Run *steps* in order; on any failure undo the done ones newest first (the one ``Undo``) and re-raise.

    A step's inverse is data (``Step.undo``: printable by ``--dry-run``); once the step
    has run, its inverse goes on the same undo list the vif transaction uses.
    """
    undo = Undo()
    for number, step in enumerate(steps, 1):
        try:
            applier.run(step)
        except Exception as e:
            log(f"step {number} ({step.describe()}) failed: {e}; undoing {len(undo)} steps")
            undo.rollback(log)
            if not isinstance(e, HotplugError):
                raise  # a bug: still reported as one, after the host is put back
            raise StepFailed(f"step {number} of {len(steps)} ({step.describe()}) failed: {e}; "
                             "everything done before it was undone") from None
        if step.undo is not None:
            undo.push(step.undo.describe(), partial(applier.run, step.undo))
