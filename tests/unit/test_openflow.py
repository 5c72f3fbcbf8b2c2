"""antispoof=yes on Open vSwitch as data: the OpenFlow flows and bundles per vif (pure; no root).

Golden files hold what ``install`` and ``remove`` hand to ``ovs-ofctl`` for
one vif (recorded through a fake executor); regenerate after an intended
change with ``XENSCRIPTS_UPDATE_GOLDEN=1`` and read the diff. Open vSwitch's
own parser (``ovs-ofctl parse-flows``, no switch needed) must accept every flow.
The flows' effect on real frames is proven in tests/host/test_ovs_antispoof.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from xenscripts.firewall import openflow
from xenscripts.xen.ovsdb import DEFAULT_RUNDIR, db_socket

GOLDEN = Path(__file__).parent / "golden" / "openflow"
MAC = "00:16:3e:00:01:00"
SCENARIOS = {
    # name: (ofport, ips, untagged_only: the port has no VLANs of its own)
    "noip": (3, (), True),
    "v4-v6": (3, ("10.1.0.11", "2001:db8::11"), True),
    "several": (7, ("10.1.0.11", "10.1.0.13", "10.1.7.0/28", "2001:db8::11", "2001:db8:1::/64"), True),
    "trunk-port": (3, ("10.1.0.11",), False),  # bridge=ovsbr0:10:20 or a vlan key: tagged frames are its own
}


def recorded(ofport: int, ips: tuple[str, ...], untagged_only: bool) -> str:
    """What install then remove send for vif1.0 (domid 1, devid 0) on ovsbr0, as ovs-ofctl would get it."""
    calls: list[str] = []

    def executor(argv, stdin, env) -> None:
        calls.append(f"$ ovs-ofctl {' '.join(argv)}\n{stdin}")

    cookie = openflow.cookie(1, 0, "vif1.0")
    openflow.install("ovsbr0", ofport, MAC, ips, cookie, {"OVS_RUNDIR": "/run/ovs-test"}, run=executor,
                     untagged_only=untagged_only)
    openflow.remove("ovsbr0", cookie, {}, run=executor)
    return "".join(calls)


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name: str) -> None:
    text = recorded(*SCENARIOS[name])
    path = GOLDEN / f"{name}.flows"
    if os.environ.get("XENSCRIPTS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path} (XENSCRIPTS_UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="ovs-ofctl not installed (openvswitch-common)")
@pytest.mark.parametrize("name", SCENARIOS)
def test_open_vswitch_parses_every_flow(name: str, tmp_path: Path) -> None:
    ofport, ips, untagged_only = SCENARIOS[name]
    flows = tmp_path / "flows"
    flows.write_text("\n".join(openflow.flows(ofport, MAC, ips, openflow.cookie(1, 0, "vif1.0"), untagged_only))
                     + "\n")
    cp = subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "parse-flows", str(flows)], capture_output=True,
                        text=True, check=False)
    assert cp.returncode == 0, cp.stderr


def test_every_flow_carries_the_cookie_and_the_port_and_the_last_drops_the_rest() -> None:
    cookie = openflow.cookie(5, 2, "vif5.2")
    flows = openflow.flows(9, MAC, ("10.1.0.11",), cookie)
    assert all(f"cookie={cookie:#x},in_port=9" in f for f in flows)
    assert flows[0] == f"priority=8200,cookie={cookie:#x},in_port=9,vlan_tci=0x1000/0x1000,actions=drop"
    assert not [f for f in openflow.flows(9, MAC, ("10.1.0.11",), cookie, untagged_only=False) if "vlan_tci" in f]
    assert flows[-1] == f"priority=4000,cookie={cookie:#x},in_port=9,actions=drop"
    priorities = [int(f.split(",")[0].removeprefix("priority=")) for f in flows]
    assert priorities == sorted(priorities, reverse=True) and min(priorities[:-1]) > 4000


def test_cookie_per_vif() -> None:
    assert openflow.cookie(1, 0, "vif1.0") == 0x7873000000010000
    assert openflow.cookie(0x7FEF, 0xABCD, "x") == 0x7873_0000_7FEF_ABCD  # the highest domid a guest can have
    assert openflow.cookie(2, 0, "a") != openflow.cookie(1, 0, "a") != openflow.cookie(1, 1, "a")
    # an HVM guest's emulated NIC has its PV vif's domid and devid: another cookie all the same
    assert openflow.cookie(1, 0, "vif1.0-emu", tap=True) == 0x7873400000010000 != openflow.cookie(1, 0, "vif1.0")
    no_ids = openflow.cookie(None, None, "web0")  # a hash of the name, in its own half of our space
    assert no_ids >> 48 == 0x7873 and no_ids & 0x0000_8000_0000_0000 and no_ids != openflow.cookie(None, None, "web1")


def test_ofctl_env_names_only_the_run_dir() -> None:
    assert openflow.ofctl_env({"OVS_RUNDIR": "/r", "SECRET": "x", "PATH": "/bin"}) == {
        "PATH": "/bin", "LANG": "C", "OVS_RUNDIR": "/r"}


@pytest.mark.parametrize(("env", "conf", "socket"), [
    ({"OVS_RUNDIR": "/run/o"}, {"ovsdb": "/srv/db.sock"}, "/run/o/db.sock"),  # ovs-vsctl's variable wins
    ({}, {"ovsdb": "/srv/db.sock"}, "/srv/db.sock"),
    ({"OVS_RUNDIR": ""}, {}, f"{DEFAULT_RUNDIR}/db.sock"),
    ({}, {}, "/var/run/openvswitch/db.sock"),
])
def test_where_the_database_is(env, conf, socket) -> None:
    assert db_socket(env, conf) == socket
