"""One vif transaction, the same failures injected into every vif script: the host is left exactly as it was.

Each case plugs and unplugs a first guest (so the firewall's tables exist),
takes a snapshot of dom0 with independent observers (``ip -j`` links,
addresses, routes of every table and proxy neighbours, the vifs' proxy_arp,
``nft -j list ruleset``, ``iptables-save``, the state directory, and for
vif-openvswitch ``ovs-vsctl``'s ports and interfaces and ``ovs-ofctl``'s
flows), makes a second guest's online fail at a late step, and compares.
The failures: a hook that fails, ``hotplug-status=connected`` refused by
xenstored, and a caller that gave up (hotplugd finishes the work after the
client has gone).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from xensim.hooks import marked_hook
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command
from xensim.ovs import OvsSwitch, ovs_available
from xensim.poll import file_contains
from xensim.routed import state_dir, sysctl

SCRIPTS = {
    "vif-bridge": {"bridge": "xenbr0"},
    "vif-route": {"bridge": None, "script": "/etc/xen/scripts/vif-route"},
    "vif-nat": {"bridge": None, "script": "/etc/xen/scripts/vif-nat", "guest_addr": ""},
    "vif-openvswitch": {"bridge": "ovsbr0", "script": "/etc/xen/scripts/vif-openvswitch"},
}
DAEMON_MODE = os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon"


@pytest.fixture
def host(bare_host):
    return bare_host  # eth0 keeps dom0's address (vif-route, vif-nat); vif-bridge adds xenbr0


@pytest.fixture
def switch(host, request):
    """For vif-openvswitch, this host's own Open vSwitch with bridge ovsbr0 (else None)."""
    if request.node.callspec.params["kind"] != "vif-openvswitch":
        yield None
        return
    ok, why = ovs_available()
    if not ok:
        pytest.skip(why)
    ovs = OvsSwitch(host, name=f"ovs{os.urandom(3).hex()}")
    try:
        ovs.add_bridge("ovsbr0")
        yield ovs
    finally:
        ovs.stop()


def _hook(script_dir: Path, body: str) -> None:
    hooks = script_dir / "vif-post.d"
    hooks.mkdir(parents=True, exist_ok=True)
    path = hooks / "10-fail.hook"
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _rules(host: SimHost) -> dict:
    ruleset = json.loads(host.sh(host.dom0, "nft", "-j", "list", "ruleset").stdout or "{}")
    for item in ruleset.get("nftables", []):
        for obj in item.values():
            if isinstance(obj, dict):
                obj.pop("handle", None)
    saved = host.sh(host.dom0, "iptables-save", check=False).stdout
    saved = [re.sub(r"\[\d+:\d+\]", "", line) for line in saved.splitlines() if not line.startswith("#")]
    return {"nft": ruleset, "iptables": saved}


def _ovs(switch: OvsSwitch | None) -> dict:
    """Every bridge's ports (their VLAN columns and ids), their interfaces' ids and MTU, and the flows."""
    if switch is None:
        return {}
    bridges = switch.vsctl("list-br").stdout.split()
    ports = {name: ({k: v for k, v in (switch.port(name) or {}).items() if k != "_uuid"},
                    {k: v for k, v in (switch.interface(name) or {}).items() if k in ("external_ids", "mtu")})
             for bridge in bridges for name in switch.ports(bridge)}
    return {"ovs_ports": ports, "ovs_flows": {bridge: switch.flows(bridge) for bridge in bridges}}


def _snapshot(host: SimHost, vifs: list[str], switch: OvsSwitch | None = None) -> dict:
    links = {link["ifname"]: (link.get("master"), "UP" in link["flags"], link["mtu"], link["address"],
                              sorted(link.get("altnames", [])))
             for link in host.links() if link["ifname"] != "lo"}
    addrs = sorted((a["ifname"], i.get("local"), i.get("prefixlen")) for a in host.addrs()
                   for i in a.get("addr_info", []) if i.get("scope") != "link")
    routes = sorted(json.dumps(r, sort_keys=True) for fam in ("-4", "-6")
                    for r in json.loads(host.ip(host.dom0, "-j", fam, "route", "show", "table", "all").stdout
                                        or "[]")
                    if not str(r.get("dst", "")).startswith(("fe80", "ff00", "multicast")))
    proxies = host.ip(host.dom0, "-6", "neigh", "show", "proxy").stdout.split()
    records = sorted(str(p.relative_to(state_dir(host))) for p in Path(state_dir(host)).rglob("*")) \
        if os.path.isdir(state_dir(host)) else []
    return {"links": links, "addrs": addrs, "routes": routes, "proxies": proxies, "records": records,
            "proxy_arp": {v: sysctl(host, f"net/ipv4/conf/{v}/proxy_arp") for v in vifs}, **_rules(host),
            **_ovs(switch)}


def _setup(host: SimHost, kind: str, tmp_path: Path, antispoof: str,
           switch: OvsSwitch | None) -> tuple[list[str], dict]:
    command = our_command(kind)
    if kind == "vif-bridge":
        host.add_bridge("xenbr0")
    env = {"XENSCRIPTS_STATE_DIR": state_dir(host), "XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts"),
           "antispoof": antispoof, **(switch.env if switch is not None else {})}
    first = host.add_guest(1, **SCRIPTS[kind])
    assert host.run_hotplug(command, 1, extra_env=env).returncode == 0
    assert host.run_hotplug(command, 1, command="offline", extra_env=env).returncode == 0
    second = host.add_guest(2, vifname="web2", mtu=9000, **SCRIPTS[kind])
    return [first.vif, second.vif], env


@pytest.mark.parametrize("antispoof", ["no", "yes"])
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_a_failing_hook_undoes_every_step(host, switch, xenstored, tmp_path, kind, antispoof):
    vifs, env = _setup(host, kind, tmp_path, antispoof, switch)
    before = _snapshot(host, vifs, switch)
    _hook(tmp_path / "scripts", "echo hook says no >&2; exit 1")
    cp = host.run_hotplug(our_command(kind), 2, extra_env=env)
    assert cp.returncode == 1, cp.stderr
    backend = host.guests[(2, 0)].backend
    assert "10-fail.hook" in (xenstored.read(f"{backend}/hotplug-error") or "")
    assert xenstored.read(f"{backend}/hotplug-status") == "error"
    assert _snapshot(host, vifs, switch) == before


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_failing_to_write_connected_undoes_every_step(host, switch, xenstored, tmp_path, kind):
    """hotplug-status=connected is the transaction's last step: libxl never sees a half-plugged vif."""
    vifs, env = _setup(host, kind, tmp_path, "yes", switch)
    before = _snapshot(host, vifs, switch)
    backend = host.guests[(2, 0)].backend
    xenstored.fail(f"{backend}/hotplug-status", "EACCES")
    try:
        cp = host.run_hotplug(our_command(kind), 2, extra_env=env)
    finally:
        xenstored.fail(f"{backend}/hotplug-status", None)
    assert cp.returncode == 1, cp.stderr
    assert "hotplug-status" in cp.stderr
    assert _snapshot(host, vifs, switch) == before
    assert host.run_hotplug(our_command(kind), 2, extra_env=env).returncode == 0  # and the retry works
    assert xenstored.read(f"{backend}/hotplug-status") == "connected"
    assert host.run_hotplug(our_command(kind), 2, command="offline", extra_env=env).returncode == 0


@pytest.mark.skipif(DAEMON_MODE, reason="starts its own hotplugd: the daemon pass would run it the same way again")
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_a_caller_that_gave_up_gets_every_step_undone(host, switch, xenstored, tmp_path, kind):
    """The client's budget runs out while hotplugd is in the hook: the run finishes, sees its caller gone, undoes."""
    vifs, env = _setup(host, kind, tmp_path, "yes", switch)
    before = _snapshot(host, vifs, switch)
    script_dir, marker = marked_hook(tmp_path / "slow", "sleep 2")
    log = tmp_path / "hotplug.log"
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")) as daemon:
        cp = host.run_hotplug(our_command(kind), 2, extra_env={
            **env, "XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SCRIPT_DIR": script_dir,
            "XENSCRIPTS_CLIENT_TIMEOUT": "1", "XENSCRIPTS_LOG_FILE": str(log)})
        assert cp.returncode == 1 and "timed out" in cp.stderr, cp.stderr
        assert file_contains(Path(daemon.log_path), "hotplugd: ran ", timeout=15), "the daemon's run never ended"
    assert marker.read_text().count("started") == 1  # run once, by the daemon
    assert "its caller went away before it finished; undone" in log.read_text()
    assert xenstored.read(f"{host.guests[(2, 0)].backend}/hotplug-status") != "connected"
    assert _snapshot(host, vifs, switch) == before
