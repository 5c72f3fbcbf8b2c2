"""Bridge VLAN filtering on one port (``bridge vlan add dev vif1.0 vid 10 pvid untagged``), over netlink.

``port_plan`` is pure (golden-tested): the ``vlan_filter`` requests that turn
a port's VLANs into a VlanSpec (xen/vlanspec.py), deletions first, runs of equal flags sent as
one range (tagged ones: pyroute2 gives a range no other flags). ``ensure_port_vlans`` reads the port's VLANs and the bridge's
``vlan_filtering``, switches filtering on only when it is off, and sends only
what differs, so a second run sends nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .link import Link, Net, Undo, netlink_errors

PVID, UNTAGGED = 0x2, 0x4  # BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED (linux/if_bridge.h)
_AF_BRIDGE = 7
_RTEXT_FILTER_BRVLAN = 1 << 1
Request = tuple[str, dict[str, Any]]  # (command, vlan_info) for pyroute2's IPRoute.vlan_filter


class VlanSpec(Protocol):
    """What a port carries (xen/vlanspec.py's VlanSpec): the PVID, other untagged VLANs, tagged ones."""

    @property
    def pvid(self) -> int | None: ...
    @property
    def untagged(self) -> tuple[int, ...]: ...
    @property
    def tagged(self) -> tuple[int, ...]: ...


def ranges(vids: tuple[int, ...]) -> list[tuple[int, int]]:
    """Consecutive runs of *vids* as (first, last) pairs."""
    out: list[tuple[int, int]] = []
    for vid in sorted(vids):
        if out and vid == out[-1][1] + 1:
            out[-1] = (out[-1][0], vid)
        else:
            out.append((vid, vid))
    return out


def wanted(spec: VlanSpec) -> dict[int, int]:
    """VID -> flags the port should carry for *spec*."""
    out = dict.fromkeys(spec.tagged, 0)
    out.update(dict.fromkeys(spec.untagged, UNTAGGED))
    if spec.pvid is not None:
        out[spec.pvid] = PVID | UNTAGGED
    return out


def port_plan(spec: VlanSpec, current: dict[int, int]) -> list[Request]:
    """The requests turning a port's *current* VLANs (VID -> flags) into *spec*; empty when already so."""
    want = wanted(spec)
    gone = tuple(vid for vid in current if vid not in want)
    changed = {vid: flags for vid, flags in want.items() if current.get(vid) != flags}
    out: list[Request] = [("del", {"vid": _vid_text(a, b)}) for a, b in ranges(gone)]
    for flags in sorted(set(changed.values()), reverse=True):
        vids = tuple(sorted(vid for vid, f in changed.items() if f == flags))
        if flags:  # pyroute2 sends a range with range flags only: untagged VLANs go one by one
            out += [("add", {"vid": vid, "flags": flags}) for vid in vids]
        else:
            out += [("add", {"vid": _vid_text(a, b)}) for a, b in ranges(vids)]
    return out


def _vid_text(a: int, b: int) -> int | str:
    return a if a == b else f"{a}-{b}"


def current_vlans(net: Net, index: int) -> dict[int, int]:
    """The port's VLANs (VID -> flags), from the kernel's bridge-port dump (RTEXT_FILTER_BRVLAN)."""
    return all_port_vlans(net).get(index, {})


def all_port_vlans(net: Net) -> dict[int, dict[int, int]]:
    """Every bridge port's VLANs: ifindex -> VID -> flags (one dump; for ``xenscripts status``)."""
    out: dict[int, dict[int, int]] = {}
    with _bridge_errors("reading bridge ports' VLANs"):
        msgs = net.ipr.link("dump", family=_AF_BRIDGE, ext_mask=_RTEXT_FILTER_BRVLAN)
    for msg in msgs:
        spec = msg.get_attr("IFLA_AF_SPEC")
        for name, value in (spec["attrs"] if spec is not None else []):
            if name == "IFLA_BRIDGE_VLAN_INFO":
                out.setdefault(msg["index"], {})[value["vid"]] = value["flags"] & (PVID | UNTAGGED)
    return out


def describe(vlans: dict[int, int]) -> str:
    """``10 pvid untagged, 20, 30`` (as ``bridge vlan`` shows them)."""
    return ", ".join(f"{vid}{' pvid' if flags & PVID else ''}{' untagged' if flags & UNTAGGED else ''}"
                     for vid, flags in sorted(vlans.items())) or "none"


def vlan_filtering(net: Net, bridge: Link) -> bool:
    """The bridge's ``vlan_filtering`` (False when the kernel does not report it)."""
    with _bridge_errors(f"reading {bridge.name}"):
        msg = net.ipr.link("get", index=bridge.index)[0]
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    data = linkinfo.get_attr("IFLA_INFO_DATA") if linkinfo is not None else None
    return bool(data.get_attr("IFLA_BR_VLAN_FILTERING")) if data is not None else False


def ensure_port_vlans(net: Net, bridge: Link, dev: Link, spec: VlanSpec, what: str, undo: Undo,
                      debug: Callable[[str], None]) -> None:
    """Give port *dev* of *bridge* exactly *spec*'s VLANs, filtering switched on if it is off.

    *what* names the setting (``backend/vif/1/0/vlan '10p/20'``) in errors.
    """
    if not vlan_filtering(net, bridge):
        debug(f"switching on vlan_filtering on {bridge.name} for {dev.name}")
        with _bridge_errors(f"switching on vlan_filtering on bridge {bridge.name} for {what}"):
            net.ipr.link("set", index=bridge.index, kind="bridge", br_vlan_filtering=1)
        undo.push(f"switching off vlan_filtering on {bridge.name}",
                  lambda: net.ipr.link("set", index=bridge.index, kind="bridge", br_vlan_filtering=0))
    current = current_vlans(net, dev.index)
    for command, info in port_plan(spec, current):
        debug(f"bridge vlan {command} dev {dev.name} {info}")
        with _bridge_errors(f"bridge vlan {command} {info} on {dev.name} for {what}"):
            net.ipr.vlan_filter(command, index=dev.index, vlan_info=info)


def _bridge_errors(what: str) -> AbstractContextManager[object]:
    """netlink_errors naming the step; EOPNOTSUPP says the kernel lacks VLAN filtering."""
    return netlink_errors(what, hints={errno.EOPNOTSUPP: "this kernel's bridge has no VLAN filtering "
                                                        "(CONFIG_BRIDGE_VLAN_FILTERING)"})
