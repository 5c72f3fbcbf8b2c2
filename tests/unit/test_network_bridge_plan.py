"""network-bridge's pure parts: names and defaults, refusals, the plans (golden files), NFS root, VLAN request.

The golden files under ``golden/network_bridge/`` are the checked-in
expected plans; ``XENSCRIPTS_UPDATE_GOLDEN=1`` rewrites them (review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.failstep import failing_at
from xenscripts.commands.network_bridge import each_bridge, status_text
from xenscripts.core.errors import InputError
from xenscripts.netbridge.apply import Applier, StepFailed, address_request, apply_plan, route_request
from xenscripts.netbridge.nfsroot import network_root
from xenscripts.netbridge.observe import Address, NetdevState, Route
from xenscripts.netbridge.plan import (
    VLAN_ALIAS,
    Names,
    StartFacts,
    Step,
    StopFacts,
    already_started,
    plan_json,
    plan_start,
    plan_stop,
    refuse_start,
    resolve_names,
)
from xenscripts.netlink.link import Link, Links
from xenscripts.netlink.vlan import vlan_request

GOLDEN = Path(__file__).parent / "golden" / "network_bridge"
MAC = "52:54:00:12:34:56"


def link(name, index=2, kind=None, master=None, up=True, mtu=1500, mac=MAC):
    """A link; *master* is its bridge's index."""
    return Link(index=index, name=name, mtu=mtu, address=mac, up=up, master=master, kind=kind)


def links(*items, default=None):
    return Links({i.name: i for i in items}, default_dev=default)


ETH0 = NetdevState(
    link=link("eth0"),
    addresses=(
        Address(2, "192.0.2.2", 24, flags=0x80, label="eth0", broadcast="192.0.2.255"),
        Address(2, "192.0.2.3", 24, flags=0x81, label="eth0:1", broadcast="192.0.2.255"),
        Address(10, "2001:db8::2", 64, flags=0x02, valid=1000, preferred=500),
        Address(10, "fe80::5054:ff:fe12:3456", 64, flags=0x80, scope=253),
    ),
    routes=(
        Route(2, "192.0.2.0", 24, proto=2, scope=253, prefsrc="192.0.2.2"),
        Route(2, None, 0, gateway="192.0.2.1", priority=7),
        Route(2, "198.51.100.0", 24, table=100, gateway="192.0.2.1", priority=20),
        Route(2, "203.0.113.0", 24, scope=253, priority=5),
        Route(10, None, 0, gateway="2001:db8::1", priority=1024),
        Route(2, "192.0.2.2", 32, table=255, proto=2, scope=254, type=2, prefsrc="192.0.2.2"),
    ),
)


def golden(name: str, steps: list[Step]) -> None:
    path = GOLDEN / f"{name}.json"
    got = plan_json(steps)
    if os.environ.get("XENSCRIPTS_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(path.read_text()), f"plan differs from {path}"


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("variables, default, expected", [
    ({}, "enp3s0", ("enp3s0", "enp3s0", "penp3s0")),          # whole name, not upstream's "enp3"
    ({}, None, ("eth0", "eth0", "peth0")),
    ({"vifnum": "1"}, "eth0", ("eth1", "xenbr1", "eth1")),
    ({"vifnum": "1", "netdev": "eth7"}, None, ("eth7", "xenbr1", "eth7")),
    ({"netdev": "eth0", "bridge": "mybridge"}, None, ("eth0", "mybridge", "eth0")),
    ({"bridge": "xenbr0"}, "eno1", ("eno1", "xenbr0", "eno1")),
    ({"netdev": "eth0.293", "bridge": "xen-br293"}, None, ("eth0.293", "xen-br293", "eth0.293")),
    ({"netdev": "eth0", "vlan": "293"}, None, ("eth0.293", "eth0.293", "peth0.293")),
])
def test_names_and_defaults(variables, default, expected):
    names = resolve_names(variables, links(default=default))
    assert (names.netdev, names.bridge, names.nic) == expected


def test_bridge_null_does_nothing():
    assert resolve_names({"bridge": "null", "netdev": "eth0"}, links()) is None


def test_default_route_through_our_bridge_finds_the_uplink():
    started = links(link("eth0", kind="bridge"), link("peth0", 3, master=2),
                    link("vif1.0", 4, master=2), default="eth0")
    names = resolve_names({}, started)
    assert (names.netdev, names.bridge, names.nic) == ("eth0", "eth0", "peth0")
    other = links(link("mybridge", kind="bridge"), link("eth0", 3, master=2), default="mybridge")
    names = resolve_names({}, other)
    assert (names.netdev, names.bridge, names.nic) == ("eth0", "mybridge", "eth0")


@pytest.mark.parametrize("variables, words", [
    ({"netdev": "eth0", "bridge": "a-very-long-bridge"}, ["bridge", "15"]),
    ({"netdev": "eth0/x"}, ["netdev"]),
    ({"netdev": "abcdefghijklmno"}, ["renamed NIC", "pabcdefghijklmno"]),
    ({"vifnum": "x"}, ["vifnum"]),
    ({"netdev": "eth0", "vlan": "5000"}, ["vlan"]),
])
def test_bad_names_are_refused(variables, words):
    with pytest.raises(InputError) as e:
        resolve_names(variables, links())
    assert all(w in str(e.value) for w in words)


def test_refusals_name_the_culprit():
    on_other = links(link("eth0", master=3), link("br9", 3, kind="bridge"))
    with pytest.raises(InputError, match="already a port of bridge br9"):
        refuse_start(Names("eth0", "mybridge"), on_other)
    with pytest.raises(InputError, match="already a port of bridge br9"):
        refuse_start(Names("eth0", "eth0"), on_other)
    with pytest.raises(InputError, match="netdev eth3 does not exist"):
        refuse_start(Names("eth3", "eth3"), links(link("eth0")))
    with pytest.raises(InputError, match="mybridge exists already"):
        refuse_start(Names("eth0", "mybridge"), links(link("eth0"), link("mybridge", 3, kind="bridge")))


def test_already_started_only_when_this_bridge_holds_this_nic():
    assert already_started(Names("eth0", "eth0"), links(link("eth0", kind="bridge"), link("peth0", 3, master=2)))
    assert not already_started(Names("eth0", "eth0"), links(link("eth0")))
    assert not already_started(Names("eth1", "xenbr1"),
                               links(link("xenbr0", kind="bridge"), link("eth0", 3, master=2), link("eth1", 4)))


# ---------------------------------------------------------------- plans
def test_plan_start_renaming_moves_everything():
    names = Names("eth0", "eth0")
    golden("start_rename", plan_start(names, StartFacts(links(ETH0.link), ETH0)))


def test_plan_start_other_bridge_name_keeps_the_nic_name():
    names = Names("eth0", "mybridge")
    steps = plan_start(names, StartFacts(links(ETH0.link), ETH0, antispoof=True))
    assert not [s for s in steps if s.verb == "rename"]
    golden("start_mybridge_antispoof", steps)


def test_plan_start_vlan_created_on_a_vlan_challenged_nic():
    names = resolve_names({"netdev": "eth0", "vlan": "293", "bridge": "xen-br293"}, links(ETH0.link))
    facts = StartFacts(links(ETH0.link), None, parent=NetdevState(link("eth0")), vlan_challenged=True,
                       tx_offload_off=True)
    steps = plan_start(names, facts)
    assert steps[0].verb == "create_vlan" and steps[0].args["mtu"] == 1496
    golden("start_vlan_challenged", steps)


def test_plan_start_keeps_bonding_slaves():
    bond = NetdevState(link("bond0", kind="bond"), slaves=("eth0", "eth1"))
    steps = plan_start(Names("bond0", "bond0"), StartFacts(links(bond.link), bond))
    assert steps[-1] == Step("keep_slaves", "pbond0", {"slaves": ["eth0", "eth1"]})


def _started() -> tuple[NetdevState, NetdevState]:
    bridge = NetdevState(link("eth0", 5, kind="bridge"), addresses=ETH0.addresses, routes=ETH0.routes,
                         ports=("peth0", "vif1.0"))
    return bridge, NetdevState(link("peth0", 2, master=5))


def test_plan_stop_refuses_while_guests_are_ports():
    bridge, nic = _started()
    with pytest.raises(InputError, match="still has guest ports: vif1.0"):
        plan_stop(Names("eth0", "eth0"), StopFacts(bridge, nic))


def test_plan_stop_is_the_reverse():
    bridge, nic = _started()
    golden("stop_rename_force", plan_stop(Names("eth0", "eth0"), StopFacts(bridge, nic, force=True, antispoof=True)))


def test_every_start_step_has_an_undo():
    steps = plan_start(Names("eth0", "eth0"), StartFacts(links(ETH0.link), ETH0, antispoof=True, tx_offload_off=True))
    assert all(s.undo is not None for s in steps)


# ---------------------------------------------------------------- apply (fake netlink)
class FakeIPR:
    def __init__(self):
        self.calls = []

    def link_lookup(self, ifname):
        return [7]

    def link(self, *args, **kw):
        self.calls.append(("link", args, kw))

    def addr(self, *args, **kw):
        self.calls.append(("addr", args, kw))

    def route(self, *args, **kw):
        self.calls.append(("route", args, kw))


def test_vlan_request_as_data():
    request = vlan_request("eth0.293", 7, 293, 1496, VLAN_ALIAS)
    assert request == {"ifname": "eth0.293", "kind": "vlan", "link": 7, "vlan_id": 293, "mtu": 1496,
                       "ifalias": VLAN_ALIAS}
    ipr = FakeIPR()
    Applier(ipr, lambda *a: None).run(Step("create_vlan", "eth0.293",
                                           {"parent": "eth0", "id": 293, "mtu": None, "alias": VLAN_ALIAS}))
    assert ipr.calls == [("link", ("add",), {"ifname": "eth0.293", "kind": "vlan", "link": 7, "vlan_id": 293,
                                             "ifalias": VLAN_ALIAS})]


def test_address_and_route_requests_keep_flags_lifetimes_and_metrics():
    v6 = address_request(Address(10, "2001:db8::2", 64, flags=0x82, valid=1000, preferred=500), 3)
    assert v6["IFA_FLAGS"] == 0x02 and v6["IFA_CACHEINFO"]["ifa_valid"] == 1000
    v4 = address_request(Address(2, "192.0.2.3", 24, flags=0x81, label="eth0:1", broadcast="192.0.2.255"), 3)
    assert "IFA_FLAGS" not in v4 and "IFA_CACHEINFO" not in v4 and v4["label"] == "eth0:1"
    r = route_request(Route(2, "198.51.100.0", 24, table=100, gateway="192.0.2.1", priority=20), 3)
    assert (r["table"], r["priority"], r["gateway"], r["dst"], r["oif"]) == (100, 20, "192.0.2.1", "198.51.100.0", 3)


def test_a_failure_undoes_done_steps_newest_first_and_names_the_step():
    ipr, fw = FakeIPR(), []
    steps = plan_start(Names("eth0", "mybridge"), StartFacts(links(ETH0.link), ETH0))
    with pytest.raises(StepFailed, match=r"step 3 of 17 \(remove route 198.51.100.0/24 via 192.0.2.1 .*undone"):
        apply_plan(failing_at(3, Applier(ipr, lambda *a: fw.append(a))), steps, lambda m: None)
    verbs = [(c[0], c[1][0]) for c in ipr.calls]
    # create bridge (+ set MAC/MTU), remove one route; then undo: add the route back, delete the bridge
    assert verbs == [("link", "add"), ("link", "set"), ("route", "del"), ("route", "add"), ("link", "del")]


def test_a_bug_in_a_step_still_undoes_the_done_ones_and_is_raised_as_itself():
    ipr, fw = FakeIPR(), []
    steps = plan_start(Names("eth0", "mybridge"), StartFacts(links(ETH0.link), ETH0))
    applier = Applier(ipr, lambda *a: fw.append(a))
    real_run = applier.run

    def run(step):
        if step.verb == "del_route":
            raise KeyError("a bug")
        return real_run(step)

    applier.run = run
    with pytest.raises(KeyError):
        apply_plan(applier, steps, lambda m: None)
    assert [(c[0], c[1][0]) for c in ipr.calls] == [("link", "add"), ("link", "set"), ("link", "del")]


# ---------------------------------------------------------------- NFS root
@pytest.mark.parametrize("mounts, cmdline, expected", [
    ("/dev/sda1 / ext4 rw 0 0\n", "root=/dev/sda1", (False, None)),
    ("10.0.0.9:/srv/root / nfs rw,vers=3,addr=10.0.0.9 0 0\n", "root=/dev/nfs", (True, "10.0.0.9")),
    ("server:/root / nfs4 rw 0 0\n", "nfsroot=10.1.1.1:/export/root,v3 ip=dhcp", (True, "10.1.1.1")),
    ("/dev/sdb1 / ext4 rw,_netdev 0 0\n", "", (True, None)),
    ("rootfs / rootfs rw 0 0\n/dev/nbd0 / ext4 rw 0 0\n", "", (False, None)),   # the last mount on / wins
    ("[fd00::9]:/root / nfs rw 0 0\n", "", (True, "fd00::9")),
])
def test_network_root_detector(mounts, cmdline, expected):
    assert network_root(mounts, cmdline) == expected


# ---------------------------------------------------------------- several bridges, status
def test_bridges_from_the_config_file():
    conf = {"bridges": "xenbr0:eth0 xenbr1:eth1"}
    assert each_bridge({}, conf, False) == [{"bridge": "xenbr0", "netdev": "eth0"},
                                            {"bridge": "xenbr1", "netdev": "eth1"}]
    assert [v["bridge"] for v in each_bridge({}, conf, True)] == ["xenbr1", "xenbr0"]
    assert each_bridge({"vifnum": "0"}, conf, False) == [{"vifnum": "0"}]


def test_status_text_is_readable():
    assert status_text({"bridge": "eth0", "nic": "peth0", "netdev": "eth0", "started": False}) == \
        "bridge eth0: not started (peth0 is not bridged)"
    text = status_text({"bridge": "eth0", "nic": "peth0", "started": True, "up": True, "mac": MAC, "mtu": 1500,
                        "ports": ["peth0"], "addresses": [vars(ETH0.addresses[0])],
                        "routes": [vars(ETH0.routes[1])]})
    assert "address:   192.0.2.2/24" in text and "route:     default via 192.0.2.1 metric 7" in text


def test_vlan_request_encodes_to_the_netlink_message_the_kernel_gets():
    """pyroute2's own argument processing and ifinfmsg encoder, no socket: RTM_NEWLINK for 802.1Q id 293."""
    from pyroute2.iproute.linux import get_arguments_processor
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    fields = dict(get_arguments_processor("link", "add", vlan_request("eth0.293", 7, 293, 1496, VLAN_ALIAS)))
    msg = ifinfmsg()
    header = {f[0] for f in msg.fields}
    for key, value in fields.items():
        if key in header:
            msg[key] = value
        else:
            msg["attrs"].append([msg.name2nla(key), value])
    msg.encode()
    wire = ifinfmsg(msg.data)
    wire.decode()
    assert (wire.get_attr("IFLA_IFNAME"), wire.get_attr("IFLA_LINK"), wire.get_attr("IFLA_MTU")) == ("eth0.293", 7, 1496)
    assert wire.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "vlan"
    assert wire.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID") == 293
    assert wire.get_attr("IFLA_IFALIAS") == VLAN_ALIAS
