"""``xenscripts show``: DOT and the text tree drawn from a status report (pure; Graphviz checks the DOT)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from xenscripts.admin.picture import to_dot, to_text


def nic(domid: int, vif: str, kind: str = "bridge", bridge: str | None = "xenbr0", **kw) -> dict:
    base = {"domid": domid, "name": f"guest{domid}", "devid": 0, "vif": vif, "kind": kind, "bridge": bridge,
            "routes": [], "mac": f"00:16:3e:00:0{domid}:00", "addresses": [], "vif_addresses": [],
            "hotplug_status": "connected"}
    return base | kw


STATUS = {
    "networks": {
        "bridges": [{"name": "xenbr0", "mtu": 1500, "up": True, "addresses": ["10.0.0.2/24"],
                     "uplinks": ["eth0"], "vifs": ["vif1.0", "web2"]}],
        "routed": {"vifs": ["vif4.0"], "started_on": ["eth1"], "ip_forward": "1", "routes": []},
    },
    "nics": [
        nic(1, "vif1.0"),
        nic(2, "web2", addresses=["10.9.9.2"]),
        nic(3, "vif3.0", bridge=None, hotplug_status=""),
        nic(4, "vif4.0", kind="route", bridge=None, routes=["10.0.0.14/32"], addresses=["10.0.0.14"],
            vif_addresses=["10.0.0.2/32"]),
        nic(4, "vif4.1", kind="route", bridge=None, devid=1),
    ],
}


def test_dot_draws_every_nic_guest_bridge_uplink_and_the_router() -> None:
    dot = to_dot(STATUS)
    for text in ('"vif:vif1.0"', '"vif:web2"', '"vif:vif3.0"', '"vif:vif4.0"', 'label="guest1\\ndom1"',
                 'label="guest4\\ndom4"', '"br:xenbr0" -> "vif:vif1.0"', '"nic:eth0" -> "br:xenbr0"',
                 'router -> "vif:vif4.0" [dir=both, label="10.0.0.14/32"]', "10.0.0.2/32", "ip_forward=1",
                 "10.9.9.2", '"nic:eth1" -> router', 'lan -> "nic:eth1"'):
        assert text in dot, text
    assert dot.count('"dom4" [label=') == 1  # one guest, two NICs
    assert "lightpink" in dot  # the unplugged vif stands out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_accepts_the_dot() -> None:
    cp = subprocess.run(["dot", "-Tsvg"], input=to_dot(STATUS), capture_output=True, text=True, check=False)
    assert cp.returncode == 0 and "Warning" not in cp.stderr, cp.stderr
    for name in ("vif1.0", "web2", "vif3.0", "vif4.0", "guest1", "guest2", "guest3", "guest4"):
        assert f">{name}<" in cp.stdout


def test_text_tree() -> None:
    assert to_text(STATUS).splitlines() == [
        "eth0 ══ xenbr0 10.0.0.2/24 mtu 1500",
        "   ├─ vif1.0 ── guest1 (dom1 eth0 00:16:3e:00:01:00) [connected]",
        "   └─ web2 ── guest2 (dom2 eth0 00:16:3e:00:02:00 10.9.9.2) [connected]",
        "dom0 router 10.0.0.2/32 (ip_forward=1)",
        "   ├─ vif4.0 ── guest4 (dom4 eth0 00:16:3e:00:04:00 10.0.0.14) routes 10.0.0.14/32 [connected]",
        "   └─ vif4.1 ── guest4 (dom4 eth1 00:16:3e:00:04:00) [connected]",
        "on no bridge",
        "   └─ vif3.0 ── guest3 (dom3 eth0 00:16:3e:00:03:00) [not plugged]",
    ]


def test_a_vif_no_backend_has_is_drawn_apart() -> None:
    status = STATUS | {"unknown_vifs": [{"vif": "vif9.0", "bridge": "xenbr0", "mtu": 1500, "mac": "", "up": True,
                                         "addresses": [], "routes": []}]}
    dot = to_dot(status)
    assert '"vif:vif9.0" [label="vif9.0\\n(no backend)"' in dot and '"br:xenbr0" -> "vif:vif9.0"' in dot
    assert "vif9.0 (in the kernel, no backend in xenstore; bridge xenbr0)" in to_text(status)


def test_an_empty_host() -> None:
    empty = {"networks": {"bridges": []}, "nics": []}
    assert to_text(empty) == "no Xen networks\n"
    assert to_dot(empty).startswith("digraph xen {")


OVS_STATUS = {
    "networks": {"bridges": [{"name": "ovsbr0", "mtu": 1500, "up": True, "addresses": [], "ovs": True,
                              "uplinks": ["eth1"], "vifs": ["vif5.0", "vif6.0"]},
                             {"name": "xenbr0", "mtu": 1500, "up": True, "addresses": [], "uplinks": [],
                              "vifs": ["vif7.0"]}]},
    "nics": [
        nic(5, "vif5.0", kind="openvswitch", bridge="ovsbr0",
            ovs_port={"bridge": "ovsbr0", "tag": 10, "trunks": [], "vlan_mode": None, "ofport": 1}),
        nic(6, "vif6.0", kind="openvswitch", bridge="ovsbr0",
            ovs_port={"bridge": "ovsbr0", "tag": 10, "trunks": [20, 30], "vlan_mode": "native-untagged",
                      "ofport": 2}),
        nic(7, "vif7.0", vlan="10p/20", port_vlans={"10": 6, "20": 0}),
    ],
}


def test_open_vswitch_bridges_and_vlans_are_drawn() -> None:
    dot = to_dot(OVS_STATUS)
    assert 'label="ovsbr0\\n(Open vSwitch)\\nmtu 1500"' in dot
    assert '"br:ovsbr0" -> "vif:vif5.0" [dir=both, label="port\\ntag 10"]' in dot
    assert '"br:ovsbr0" -> "vif:vif6.0" [dir=both, label="port\\ntag 10 trunks 20,30 native-untagged"]' in dot
    assert '"br:xenbr0" -> "vif:vif7.0" [dir=both, label="port\\nvlan=10p/20"]' in dot
    assert to_text(OVS_STATUS).splitlines() == [
        "eth1 ══ ovsbr0 (Open vSwitch) mtu 1500",
        "   ├─ vif5.0 ── guest5 (dom5 eth0 00:16:3e:00:05:00) tag 10 [connected]",
        "   └─ vif6.0 ── guest6 (dom6 eth0 00:16:3e:00:06:00) tag 10 trunks 20,30 native-untagged [connected]",
        "(no uplink) ══ xenbr0 mtu 1500",
        "   └─ vif7.0 ── guest7 (dom7 eth0 00:16:3e:00:07:00) vlan=10p/20 [connected]",
    ]
