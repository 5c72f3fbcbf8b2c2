"""Open vSwitch in ``xenscripts status/check/show``: the ports of vif-openvswitch NICs, and their drift.

The database is read only when some NIC uses vif-openvswitch, at the socket
the script itself uses (``$OVS_RUNDIR/db.sock``, conf ``ovsdb=``, default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import HotplugError
from .backends import Nic


def read_ovs_ports(env: Mapping[str, str], conf: Mapping[str, str], nics: list[Nic]) -> tuple[dict[str, Any], str]:
    """Every OVS port by name and "" (no NIC on OVS: nothing read), or {} and why the database could not be read."""
    if not any(n.kind == "openvswitch" for n in nics):
        return {}, ""
    from ..xen import ovsdb

    path = ovsdb.db_socket(env, conf)
    try:
        return {p.name: p for p in ovsdb.connect(path, timeout=5.0).ports()}, ""
    except HotplugError as e:
        return {}, str(e)


def wanted_port(nic: Nic) -> tuple[str, int | None, tuple[int, ...], str | None] | str:
    """(bridge, tag, trunks, vlan_mode) vif-openvswitch makes of the NIC's keys, or why it cannot."""
    from ..core.errors import InputError
    from ..xen.vlanspec import port_columns

    try:
        return port_columns(nic.bridge, nic.vlan, f"{nic.backend}/vlan")
    except InputError as e:
        return str(e)


def port_problems(nic: Nic, ports: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, detail) for each way the NIC's port differs from what vif-openvswitch would make."""
    want = wanted_port(nic)
    if isinstance(want, str):
        return [("ovs-config", want)]
    bridge, tag, trunks, mode = want
    port = ports.get(nic.vif)
    if port is None:
        return [("ovs-port-missing", f"Open vSwitch has no port {nic.vif} (wants it on {bridge})")]
    if port.bridge != bridge:
        return [("ovs-wrong-bridge", f"port {nic.vif} is on {port.bridge or 'no bridge'}, not {bridge}")]
    if (port.tag, port.trunks, port.vlan_mode) != (tag, trunks, mode):
        have = f"tag {port.tag}, trunks {list(port.trunks)}, vlan_mode {port.vlan_mode}"
        return [("ovs-vlan", f"port {nic.vif} has {have}; wants tag {tag}, trunks {list(trunks)}, vlan_mode {mode}")]
    return []


def port_status(nic: Nic, ports: Mapping[str, Any]) -> dict[str, Any] | None:
    """The NIC's OVS port for status (None: no such port)."""
    port = ports.get(nic.vif)
    if port is None:
        return None
    return {"bridge": port.bridge, "tag": port.tag, "trunks": list(port.trunks), "vlan_mode": port.vlan_mode,
            "ofport": port.ofport}
