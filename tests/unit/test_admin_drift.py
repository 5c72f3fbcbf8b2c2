"""The desired-vs-live comparison of ``xenscripts check``, table-driven (no root, no kernel)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from xenscripts.admin.backends import Nic
from xenscripts.admin.drift import (
    MANUAL,
    ONLINE,
    REMOVE_LOCK,
    REMOVE_ROUTE,
    REMOVE_RULES,
    START_NETWORK,
    Desired,
    find_drifts,
)
from xenscripts.admin.live import Live, Route
from xenscripts.admin.started import StartedNetwork, read_started, wanted_sysctls
from xenscripts.admin.status import forward_policy, has_rules_for
from xenscripts.netlink.link import Link, Links


def link(name: str, master: str | None = None, mtu: int = 1500, up: bool = True, kind: str | None = None,
         addrs: list[str] | None = None) -> dict:
    """One link of a live host: its Link's fields, its master by name and its addresses (``host`` joins them)."""
    return {"name": name, "master": master, "mtu": mtu, "up": up, "kind": kind, "addrs": addrs or []}


def bridged(**kw) -> Nic:
    base = Nic(domid=1, devid=0, name="web", backend="/local/domain/0/backend/vif/1/0",
               script="/etc/xen/scripts/vif-bridge", vif="vif1.0", mac="00:16:3e:00:01:00", bridge="xenbr0",
               hotplug_status="connected", online="1", state="4")
    return replace(base, **kw)


def routed(**kw) -> Nic:
    return bridged(**({"script": "vif-route", "bridge": "", "ip": "10.0.0.11", "vif": "vif2.0", "domid": 2} | kw))


def host(*links: dict, routes=(), sysctls=None, firewall: str | None = None) -> Live:
    """A live host with xenbr0 on eth0 and *links*; by default our compat rules name every vif."""
    specs = [link("xenbr0", kind="bridge"), link("eth0", master="xenbr0"), *links]
    if firewall is None:
        firewall = "\n".join(f"-A xs-{x['name']} -m physdev --physdev-out {x['name']} -j ACCEPT" for x in links)
    index = {x["name"]: i for i, x in enumerate(specs, 2)}
    return Live(links=Links({x["name"]: Link(index=index[x["name"]], name=x["name"], mtu=x["mtu"],
                                              address="fe:ff:ff:ff:ff:ff", up=x["up"], master=index.get(x["master"]),
                                              kind=x["kind"]) for x in specs}),
                addrs={x["name"]: x["addrs"] for x in specs}, routes=list(routes),
                sysctls=dict(sysctls or {"ipv4/ip_forward": "1"}), firewall=firewall)


OK_VIF = link("vif1.0", master="xenbr0")
OK_ROUTED = (link("vif2.0", addrs=["10.0.0.2/32"]),)
ROUTE = Route(dst="10.0.0.11/32", dev="vif2.0")

CASES = [
    # id, desired, live, expected [(kind, subject, fix)]
    ("clean bridged vif", Desired(nics=[bridged()]), host(OK_VIF), []),
    ("vif on no bridge", Desired(nics=[bridged()]), host(link("vif1.0")), [("vif-off-bridge", "vif1.0", ONLINE)]),
    ("vif on another bridge", Desired(nics=[bridged()]),
     host(link("xenbr1", kind="bridge"), link("vif1.0", master="xenbr1")), [("vif-off-bridge", "vif1.0", ONLINE)]),
    ("no bridge key: the first bridge", Desired(nics=[bridged(bridge="")]), host(OK_VIF), []),
    ("vif down", Desired(nics=[bridged()]), host(link("vif1.0", master="xenbr0", up=False)),
     [("vif-down", "vif1.0", ONLINE)]),
    ("MTU differs from the bridge's", Desired(nics=[bridged()]), host(link("vif1.0", master="xenbr0", mtu=1400)),
     [("mtu", "vif1.0", ONLINE)]),
    ("MTU differs from xenstore's", Desired(nics=[bridged(mtu="9000")]), host(OK_VIF), [("mtu", "vif1.0", ONLINE)]),
    ("hotplug error", Desired(nics=[bridged(hotplug_status="error", hotplug_error="bridge xenbr9 not found")]),
     host(), [("hotplug-error", "vif1.0", ONLINE)]),
    ("not plugged yet: nothing asked", Desired(nics=[bridged(hotplug_status="")]), host(), []),
    ("connected without a link", Desired(nics=[bridged()]), host(), [("vif-missing", "vif1.0", MANUAL)]),
    ("vifname not applied", Desired(nics=[bridged(vif="web1")]), host(OK_VIF), [("vif-name", "web1", ONLINE)]),
    ("bridge of the NIC gone", Desired(nics=[bridged(bridge="xenbr7")]), host(link("vif1.0")),
     [("bridge-missing", "vif1.0", MANUAL)]),
    ("clean routed vif", Desired(nics=[routed()]), host(*OK_ROUTED, routes=[ROUTE]), []),
    ("routed vif without its route", Desired(nics=[routed()]), host(*OK_ROUTED),
     [("route-missing", "vif2.0", ONLINE)]),
    ("NAT vif without the route to vif-nat's default address", Desired(nics=[routed(script="vif-nat", ip="")]),
     host(*OK_ROUTED, routes=[ROUTE]), [("route-missing", "vif2.0", ONLINE)]),
    ("NAT vif with it", Desired(nics=[routed(script="vif-nat", ip="")]),
     host(*OK_ROUTED, routes=[Route(dst="10.0.2.1/32", dev="vif2.0")]), []),
    ("routed vif without dom0's address", Desired(nics=[routed()]), host(link("vif2.0"), routes=[ROUTE]),
     [("address-missing", "vif2.0", ONLINE)]),
    ("routed vif, proxy_arp off", Desired(nics=[routed()]),
     host(*OK_ROUTED, routes=[ROUTE], sysctls={"ipv4/ip_forward": "1", "ipv4/conf/vif2.0/proxy_arp": "0"}),
     [("sysctl", "vif2.0", ONLINE)]),
    ("routed vif, forwarding off", Desired(nics=[routed()]),
     host(*OK_ROUTED, routes=[ROUTE], sysctls={"ipv4/ip_forward": "0"}), [("sysctl", "ip_forward", MANUAL)]),
    ("routed vif, forwarding off, network-route started: that drift says it",
     Desired(nics=[routed()], started=[StartedNetwork("route", "eth0", {"ipv4/ip_forward": "1"})]),
     host(*OK_ROUTED, routes=[ROUTE], sysctls={"ipv4/ip_forward": "0"}), [("network-sysctl", "eth0", START_NETWORK)]),
    ("rules missing", Desired(nics=[bridged()]), host(OK_VIF, firewall=""), [("rules-missing", "vif1.0", ONLINE)]),
    ("antispoof rules there", Desired(nics=[bridged(antispoof="yes")]),
     host(OK_VIF, firewall='elements = { "vif1.0" . 00:16:3e:00:01:00 }'), []),
    ("firewall=none in the config file: no rules wanted", Desired(nics=[bridged()], firewall="none"),
     host(OK_VIF, firewall=""), []),
    ("firewall=none for this NIC", Desired(nics=[bridged(firewall="none")]), host(OK_VIF, firewall=""), []),
    ("rules of a vif that is gone", Desired(nics=[bridged()]),
     host(OK_VIF, firewall="-A FORWARD -m physdev --physdev-in vif1.0 -j ACCEPT\n-A FORWARD --physdev-in vif9.0"),
     [("stale-rules", "vif9.0", REMOVE_RULES)]),
    ("vif1.1 rules do not count for vif1.10", Desired(nics=[bridged(vif="vif1.10")]),
     host(link("vif1.10", master="xenbr0"), firewall='iifname "vif1.1" drop'),
     [("rules-missing", "vif1.10", ONLINE), ("stale-rules", "vif1.1", REMOVE_RULES)]),
    ("our chains of a renamed vif that is gone", Desired(nics=[bridged()]),
     host(OK_VIF, firewall=":xs-web9 - [0:0]\n:xs-net-web8 - [0:0]\n:xsnet-eth0 - [0:0]\n"
                               "-A xs-vif1.0 -o vif1.0"),
     [("stale-rules", "net-web8", REMOVE_RULES), ("stale-rules", "web9", REMOVE_RULES)]),
    ("route through a vif no backend has", Desired(nics=[bridged()]),
     host(OK_VIF, link("vif9.0"), routes=[Route(dst="10.0.0.99/32", dev="vif9.0")]),
     [("stale-route", "vif9.0", REMOVE_ROUTE)]),
    ("stale lock", Desired(stale_locks=["/var/run/xen-hotplug/iptables"]), host(),
     [("stale-lock", "/var/run/xen-hotplug/iptables", REMOVE_LOCK)]),
    ("dpkg-new beside ours", Desired(scripts=[{"name": "vif-bridge", "owner": "ours", "kept": True,
                                               "dpkg_new": "/etc/xen/scripts/vif-bridge.dpkg-new"}]), host(),
     [("dpkg-new", "vif-bridge", MANUAL)]),
    ("dpkg-new beside upstream's own: not ours to judge",
     Desired(scripts=[{"name": "vif-bridge", "owner": "upstream", "kept": False,
                       "dpkg_new": "/etc/xen/scripts/vif-bridge.dpkg-new"}]), host(), []),
    ("venv made by another Python", Desired(venv_problem="made by Python 3.9"), host(),
     [("venv-python", "venv", MANUAL)]),
    ("configured bridge missing", Desired(bridges=[("xenbr1", "eth1")]), host(),
     [("bridge-missing", "xenbr1", START_NETWORK)]),
    ("configured uplink off its bridge", Desired(bridges=[("xenbr0", "eth0")]),
     host(link("eth0")), [("uplink-off-bridge", "xenbr0", MANUAL)]),
    ("configured bridge as it should be", Desired(bridges=[("xenbr0", "eth0")]), host(), []),
    ("a config file error", Desired(problems=["/etc/xen/xenscripts.conf line 3: unknown key 'x'"]), host(),
     [("problem", "host", MANUAL)]),
]


@pytest.mark.parametrize(("desired", "live", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_drifts(desired: Desired, live: Live, expected: list[tuple[str, str, str]]) -> None:
    assert [(d.kind, d.subject, d.fix) for d in find_drifts(desired, live)] == expected


def test_each_drift_names_what_is_wrong() -> None:
    [d] = find_drifts(Desired(nics=[bridged()]), host(link("vif1.0")))
    assert d.detail == "vif1.0 (dom1 web devid 0) is on no bridge, not of xenbr0"
    assert d.as_dict() == {"kind": "vif-off-bridge", "subject": "vif1.0", "detail": d.detail, "fix": "online"}


@pytest.mark.parametrize(("text", "policy"), [
    ("", "ACCEPT"),
    ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n", "DROP"),
    ("*filter\n:FORWARD ACCEPT [0:0]\n", "ACCEPT"),
    ("table inet xenscripts {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy drop;\n\t}\n}", "DROP"),
])
def test_forward_policy(text: str, policy: str) -> None:
    assert forward_policy(text) == policy


def test_rules_match_whole_names_only() -> None:
    assert has_rules_for("--physdev-in vif1.1 -j ACCEPT", "vif1.1")
    assert not has_rules_for("--physdev-in vif1.10 -j ACCEPT", "vif1.1")
    assert not has_rules_for("--physdev-in vif1.1-emu -j ACCEPT", "vif1.1")


@pytest.mark.parametrize(("lines", "stats"), [
    ([], None),
    (["hotplugd: ran vif-bridge online vif=vif1.0: status 0 in 12.0 ms"], None),  # before it said it listens
    (["hotplugd: listening on /run/x.sock (ready in 0.40 s)"], (0, 0.0)),
    (["hotplugd: listening on /run/x.sock (ready in 0.40 s)",
      "hotplugd: ran vif-bridge online vif=vif1.0: status 0 in 12.0 ms",
      "hotplugd: refused: no network namespace sent",
      "hotplugd: ran vif-bridge offline vif=vif1.0: status 0 in 30.5 ms",
      "hotplugd: ran vif-route online vif=vif2.0: status 1 in 14.0 ms"], (3, 14.0)),
    (["hotplugd: listening on /a", "hotplugd: ran x in 99.0 ms", "hotplugd: listening on /a",
      "hotplugd: ran y in 5.0 ms"], (1, 5.0)),  # since the last start only
])
def test_served_stats_from_the_daemon_log(lines: list[str], stats: tuple[int, float] | None) -> None:
    from xenscripts.admin.hotplugd import served_stats

    assert served_stats(lines) == stats


NAT_NFT = 'table ip xenscripts {\n\tset masquerade_out {\n\t\ttype ifname\n\t\telements = { "eth0" }\n\t}\n}'


@pytest.mark.parametrize(("started", "live", "expected"), [
    ([StartedNetwork("route", "eth0", wanted_sysctls("route", "eth0", {}))],
     host(sysctls={"ipv4/ip_forward": "1", "ipv4/conf/eth0/proxy_arp": "1"}), []),
    ([StartedNetwork("route", "eth0", wanted_sysctls("route", "eth0", {"ipv6/conf/all/forwarding": "0"}))],
     host(sysctls={"ipv4/ip_forward": "0", "ipv4/conf/eth0/proxy_arp": "1", "ipv6/conf/all/forwarding": "0"}),
     [("network-sysctl", "eth0", "network-route netdev=eth0"), ("network-sysctl", "eth0", "network-route netdev=eth0")]),
    ([StartedNetwork("nat", "eth0", wanted_sysctls("nat", "eth0", {}))], host(firewall=NAT_NFT), []),
    ([StartedNetwork("nat", "eth0", wanted_sysctls("nat", "eth0", {}))],
     host(firewall="*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\n"), []),
    ([StartedNetwork("nat", "eth1", wanted_sysctls("nat", "eth1", {}))], host(firewall=NAT_NFT),
     [("masquerade-missing", "eth1", "network-nat netdev=eth1 dhcp=no")]),
    ([StartedNetwork("nat", "eth0", wanted_sysctls("nat", "eth0", {}), "yes")], host(firewall=NAT_NFT),
     [("dhcp-server-down", "eth0", "network-nat netdev=eth0 dhcp=yes")]),
], ids=["route as started", "route: forwarding and IPv6 forwarding off again", "nat (nft set)",
        "nat (iptables)", "nat: no MASQUERADE for its netdev", "nat dhcp=yes: dnsmasq gone"])
def test_what_network_route_and_nat_started(started, live, expected) -> None:
    assert [(d.kind, d.subject, d.arg) for d in find_drifts(Desired(started=started), live)] == expected
    assert all(d.fix == START_NETWORK for d in find_drifts(Desired(started=started), live))
    with_dhcp = Desired(started=started, dhcp_running=True)
    assert [d.kind for d in find_drifts(with_dhcp, live)] == [k for k, *_ in expected if k != "dhcp-server-down"]


def test_read_started_state_files(tmp_path) -> None:
    (tmp_path / "network-route-eth0.json").write_text('{"sysctls": {"ipv4/ip_forward": "0"}}')
    (tmp_path / "network-nat-eth1.json").write_text('{"dhcp": "yes", "sysctls": {}}')
    (tmp_path / "network-nat-broken.json").write_text("{")
    (tmp_path / "dnsmasq").mkdir()
    assert read_started(str(tmp_path)) == [
        StartedNetwork("nat", "broken", {"ipv4/ip_forward": "1"}, "no"),
        StartedNetwork("nat", "eth1", {"ipv4/ip_forward": "1"}, "yes"),
        StartedNetwork("route", "eth0", {"ipv4/ip_forward": "1", "ipv4/conf/eth0/proxy_arp": "1"}, "no"),
    ]
    assert read_started(str(tmp_path / "missing")) == []


def _drift_kinds() -> set[str]:
    """Every drift kind the admin package can report: Drift("kind", ...) and the (kind, detail) pairs of *_problems."""
    import ast

    kinds: set[str] = set()
    for path in (Path(__file__).resolve().parents[2] / "xenscripts" / "admin").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Drift" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                kinds.add(node.args[0].value)
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_problems"):
                for tup in (n for n in ast.walk(node) if isinstance(n, ast.Tuple) and len(n.elts) == 2):
                    if isinstance(tup.elts[0], ast.Constant) and isinstance(tup.elts[0].value, str):
                        kinds.add(tup.elts[0].value)
    return kinds


def test_every_drift_kind_is_in_admin_md_s_table():
    """check --json's 'kind' is documented as one of the table's names: the table must list them all."""
    admin = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    table = admin[admin.index("| drift | meaning | `--fix` |"):admin.index("`xenscripts check --fix` re-runs")]
    rows = [row for row in table.splitlines()[2:] if row.startswith("|")]
    named = {word.strip("`") for row in rows for word in row.split("|")[1].replace(",", " ").split()
             if word.startswith("`")}
    kinds = _drift_kinds()
    assert len(kinds) >= 25 and {"ovs-vlan", "bridge-vlan", "component-missing"} <= kinds  # the walk finds them
    assert kinds <= named, f"drift kinds missing from docs/admin.md's table: {sorted(kinds - named)}"
