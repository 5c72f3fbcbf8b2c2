"""xenscripts check on guest VLANs: a bridged vif's port VLANs against its vlan key; an OVS port's columns."""

from __future__ import annotations

from xenscripts.admin.backends import Nic
from xenscripts.admin.drift import nic_drifts
from xenscripts.admin.live import Live
from xenscripts.admin.vlans import vlan_problems
from xenscripts.netlink.link import Link, Links
from xenscripts.xen.ovsdb import OvsPort

BE = "/local/domain/0/backend/vif/1/0"


def nic(**kw) -> Nic:
    base = {"domid": 1, "devid": 0, "name": "g1", "backend": BE, "script": "/etc/xen/scripts/vif-bridge",
            "vif": "vif1.0", "bridge": "xenbr0", "hotplug_status": "connected"}
    return Nic(**{**base, **kw})


def live(vlans=None, ovs=None) -> Live:
    links = Links({"xenbr0": Link(2, "xenbr0", 1500, "fe:ff:ff:ff:ff:ff", True, None, "bridge"),
                   "vif1.0": Link(3, "vif1.0", 1500, "fe:ff:ff:ff:ff:ff", True, 2, "veth")})
    return Live(links=links, firewall="vif1.0", bridge_vlans={"vif1.0": vlans} if vlans is not None else {},
                ovs_ports=ovs or {})


def test_bridge_vlans_as_asked_are_no_drift():
    assert vlan_problems(nic(vlan="10p/20"), live({10: 6, 20: 0})) == []


def test_bridge_vlans_differing_are_named():
    [(kind, detail)] = vlan_problems(nic(vlan="10"), live({1: 6}))
    assert kind == "bridge-vlan" and detail == "port VLANs 1 pvid untagged; vlan=10 wants 10 pvid untagged"
    drifts = nic_drifts(nic(vlan="10"), live({}))
    assert [(d.kind, d.fix) for d in drifts] == [("bridge-vlan", "online")]


def test_no_vlan_key_no_vlan_check():
    assert vlan_problems(nic(), live({1: 6})) == []


def test_ovs_port_drifts():
    n = nic(script="vif-openvswitch", bridge="ovsbr0.10")
    good = OvsPort(name="vif1.0", bridge="ovsbr0", tag=10)
    assert nic_drifts(n, live(ovs={"vif1.0": good})) == []
    wrong_tag = OvsPort(name="vif1.0", bridge="ovsbr0", tag=11)
    assert [d.kind for d in nic_drifts(n, live(ovs={"vif1.0": wrong_tag}))] == ["ovs-vlan"]
    elsewhere = OvsPort(name="vif1.0", bridge="ovsbr1", tag=10)
    assert [d.kind for d in nic_drifts(n, live(ovs={"vif1.0": elsewhere}))] == ["ovs-wrong-bridge"]
    assert [d.kind for d in nic_drifts(n, live())] == ["ovs-port-missing"]
