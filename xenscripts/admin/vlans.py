"""Guest VLANs on Linux bridges in ``xenscripts status/check``: the ports' VLANs beside the ``vlan`` keys."""

from __future__ import annotations

from .backends import Nic
from .live import Live


def read_bridge_vlans(nics: list[Nic], live: Live) -> dict[str, dict[int, int]]:
    """Port VLANs (VID -> flags) of the bridged vifs that have a ``vlan`` key; nothing read when none has."""
    wanted = [n.vif for n in nics if n.kind == "bridge" and n.vlan and n.vif in live.links]
    if not wanted:
        return {}
    from ..core.errors import HotplugError
    from ..netlink.bridgevlan import all_port_vlans
    from ..netlink.link import Net

    try:
        with Net() as net:
            by_index = all_port_vlans(net)
    except HotplugError:
        return {}
    return {vif: by_index.get(live.links[vif].index, {}) for vif in wanted}


def vlan_problems(nic: Nic, live: Live) -> list[tuple[str, str]]:
    """(kind, detail) when a bridged vif's VLANs are not what its ``vlan`` key asks for."""
    from ..core.errors import InputError
    from ..netlink.bridgevlan import describe, wanted
    from ..xen.vlanspec import parse_vlan_key

    if nic.kind != "bridge" or not nic.vlan:
        return []
    try:
        want = wanted(parse_vlan_key(nic.vlan, f"{nic.backend}/vlan"))
    except InputError as e:
        return [("vlan-config", str(e))]
    have = live.bridge_vlans.get(nic.vif, {})
    if have == want:
        return []
    return [("bridge-vlan", f"port VLANs {describe(have)}; vlan={nic.vlan} wants {describe(want)}")]
