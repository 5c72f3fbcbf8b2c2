"""One vif transaction, the same failures injected into every vif script: the host is left exactly as it was.

Each case plugs and unplugs a first guest (so the firewall's tables exist),
takes a snapshot of dom0 with independent observers (``ip -j`` links,
addresses, routes of every table and proxy neighbours, the vifs' proxy_arp,
``nft -j list ruleset``, ``iptables-save``, the state directory), makes a
second guest's online fail at a late step, and compares.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from xensim.host import SimHost
from xensim.ours import our_command
from xensim.routed import state_dir, sysctl

SCRIPTS = {
    "vif-bridge": {"bridge": "xenbr0"},
    "vif-route": {"bridge": None, "script": "/etc/xen/scripts/vif-route"},
    "vif-nat": {"bridge": None, "script": "/etc/xen/scripts/vif-nat", "guest_addr": ""},
}


@pytest.fixture
def host(require_root, xenstored):
    h = SimHost(xenstored)  # eth0 keeps dom0's address (vif-route, vif-nat); vif-bridge adds xenbr0
    try:
        yield h
    finally:
        h.close()


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


def _snapshot(host: SimHost, vifs: list[str]) -> dict:
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
            "proxy_arp": {v: sysctl(host, f"net/ipv4/conf/{v}/proxy_arp") for v in vifs}, **_rules(host)}


def _setup(host: SimHost, kind: str, tmp_path: Path, antispoof: str) -> tuple[list[str], dict]:
    command = our_command(kind)
    if kind == "vif-bridge":
        host.add_bridge("xenbr0")
    env = {"XENSCRIPTS_STATE_DIR": state_dir(host), "XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts"),
           "antispoof": antispoof}
    first = host.add_guest(1, **SCRIPTS[kind])
    assert host.run_hotplug(command, 1, extra_env=env).returncode == 0
    assert host.run_hotplug(command, 1, command="offline", extra_env=env).returncode == 0
    second = host.add_guest(2, vifname="web2", mtu=9000, **SCRIPTS[kind])
    return [first.vif, second.vif], env


@pytest.mark.parametrize("antispoof", ["no", "yes"])
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_a_failing_hook_undoes_every_step(host, xenstored, tmp_path, kind, antispoof):
    vifs, env = _setup(host, kind, tmp_path, antispoof)
    before = _snapshot(host, vifs)
    _hook(tmp_path / "scripts", "echo hook says no >&2; exit 1")
    cp = host.run_hotplug(our_command(kind), 2, extra_env=env)
    assert cp.returncode == 1, cp.stderr
    backend = host.guests[(2, 0)].backend
    assert "10-fail.hook" in (xenstored.read(f"{backend}/hotplug-error") or "")
    assert xenstored.read(f"{backend}/hotplug-status") == "error"
    assert _snapshot(host, vifs) == before


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_failing_to_write_connected_undoes_every_step(host, xenstored, tmp_path, kind):
    """hotplug-status=connected is the transaction's last step: libxl never sees a half-plugged vif."""
    vifs, env = _setup(host, kind, tmp_path, "yes")
    before = _snapshot(host, vifs)
    backend = host.guests[(2, 0)].backend
    xenstored.fail(f"{backend}/hotplug-status", "EACCES")
    try:
        cp = host.run_hotplug(our_command(kind), 2, extra_env=env)
    finally:
        xenstored.fail(f"{backend}/hotplug-status", None)
    assert cp.returncode == 1, cp.stderr
    assert "hotplug-status" in cp.stderr
    assert _snapshot(host, vifs) == before
    assert host.run_hotplug(our_command(kind), 2, extra_env=env).returncode == 0  # and the retry works
    assert xenstored.read(f"{backend}/hotplug-status") == "connected"
    assert host.run_hotplug(our_command(kind), 2, command="offline", extra_env=env).returncode == 0
