"""VLAN devices over netlink (``ip link add link eth0 name eth0.293 type vlan id 293``), as data."""

from __future__ import annotations

from typing import Any


def vlan_request(name: str, parent_index: int, vlan_id: int, mtu: int | None, alias: str) -> dict[str, Any]:
    """pyroute2 ``link("add")`` arguments for a 802.1Q device *name* on link *parent_index*.

    *alias* (IFLA_IFALIAS) marks it as ours, so stop deletes only what start created.
    """
    request: dict[str, Any] = {"ifname": name, "kind": "vlan", "link": parent_index, "vlan_id": vlan_id,
                               "ifalias": alias}
    if mtu is not None:
        request["mtu"] = mtu
    return request
