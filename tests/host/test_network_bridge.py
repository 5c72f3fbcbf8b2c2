"""network-bridge on a simulated host whose dom0 has only its plain uplink, observed with iproute2 and pings.

Every run goes through ``our_command("network-bridge")`` in the dom0 netns
(in-process, or through the session hotplugd in daemon mode). The
independent observer is ``ip -j``; a background pinger from dom0 to the
LAN router counts the replies lost across start and stop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xensim.host import LIBXL_PATH, SimHost
from xensim.ours import BIN, our_command
from xensim.pinger import Pinger
from xensim.poll import wait_until

from .test_vif_bridge import _strip, ok


# ------------------------------------------------------------------ helpers
def network_bridge(host: SimHost, *args: str, env: dict | None = None, name: str = "network-bridge",
                   script: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run our network-bridge (or *script*) in dom0 the way an init script would."""
    full_env = {
        "PATH": LIBXL_PATH,
        "XENSCRIPTS_LOG_FILE": host.log_file,
        "XENSCRIPTS_LOCK_DIR": host.lock_dir,
        "XENSCRIPTS_SYSLOG": "",
        "XENSCRIPTS_CONF": os.path.join(host.workdir, "xenscripts.conf"),
        "XENSCRIPTS_SOCKET": os.environ.get("XENSCRIPTS_SOCKET", f"{host.workdir}/no-hotplugd.sock"),
        **(env or {}),
    }
    cmd = ["ip", "netns", "exec", host.dom0, *(script or our_command(name)), *args]
    return subprocess.run(cmd, check=False, env=full_env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def failing_step(number: int) -> list[str]:
    """network-bridge in-process with step *number* of its plan failing (the test seam tests/failstep.py)."""
    return [sys.executable, str(Path(__file__).resolve().parents[1] / "failstep.py"), str(number), "network-bridge"]


def ports_settled(host: SimHost) -> bool:
    """Every up bridge port has left the kernel's transient states (forward delay 0: forwarding at once)."""
    return all(p.get("state") == "forwarding" for p in host.bridge_ports()
               if p.get("master") and "UP" in p.get("flags", []))


def snapshot(host: SimHost) -> dict:
    """dom0's links, names, MACs, addresses (flags, lifetimes forever or not) and routes of every table.

    Taken once the bridge ports have settled, so a port caught between "disabled" and
    "forwarding" (and the ``linkdown`` routes that go with it) is not a difference.
    """
    wait_until(lambda: ports_settled(host), timeout=5)
    links = sorted(_strip(host.links()), key=lambda x: x["ifname"])
    addrs = sorted(((a["ifname"], i["family"], i.get("local"), i.get("prefixlen"), i.get("label"),
                     i.get("secondary", False), i.get("valid_life_time") == 4294967295)
                    for a in host.addrs() for i in a.get("addr_info", [])
                    if not (i.get("family") == "inet6" and i.get("scope") == "link")), key=str)
    routes = sorted(json.dumps({k: v for k, v in _strip(r).items() if k != "expires"}, sort_keys=True)
                    for fam in ("-4", "-6") for r in json.loads(host.ip(host.dom0, "-j", fam, "route", "show",
                                                                          "table", "all").stdout or "[]")
                    if not str(r.get("dst", "")).startswith(("fe80", "ff00")))
    return {"links": links, "addrs": addrs, "routes": routes}


def enrich_uplink(host: SimHost) -> None:
    """A secondary v4 address, an IPv6 address with lifetimes, a route in table 100, a metric."""
    d = host.dom0
    host.ip(d, "addr", "add", f"10.{host.k}.0.3/24", "dev", "eth0", "label", "eth0:1")
    host.ip(d, "addr", "add", "fd00:1::2/64", "dev", "eth0", "nodad", "valid_lft", "3000", "preferred_lft", "2000")
    host.ip(d, "route", "add", "192.0.2.0/24", "via", host.router_ip, "table", "100", "metric", "20")
    host.ip(d, "route", "add", "198.51.100.0/24", "via", host.router_ip, "metric", "5")


def link_of(host: SimHost, name: str) -> dict:
    link = host.link(name)
    assert link is not None, f"{name} missing: {[x['ifname'] for x in host.links()]}"
    return link


def vif_bridge(host: SimHost, domid: int, command: str = "online") -> subprocess.CompletedProcess:
    return host.run_hotplug(our_command("vif-bridge"), domid, command=command,
                            extra_env={"XENSCRIPTS_SYSLOG": ""})


def guest_reaches(host: SimHost, domid: int, bridge: str, subnet: int, dst: str) -> bool:
    """A guest on *bridge* with ``10.<k>.<subnet>.<10+domid>/24``, plugged by our vif-bridge: does it reach *dst*?"""
    guest = host.add_guest(domid, bridge=bridge, guest_addr="")
    host.ip(guest.ns, "addr", "add", f"10.{host.k}.{subnet}.{10 + domid}/24", "dev", guest.guest_if)
    ok(vif_bridge(host, domid))
    reached = host.ping(guest.ns, dst)
    ok(vif_bridge(host, domid, "offline"))
    host.remove_guest_link(domid)
    return reached


@pytest.fixture
def host(xenstored):
    with SimHost(xenstored) as h:
        yield h


# ------------------------------------------------------------------ tests
def test_start_and_stop_keep_dom0_on_the_lan_and_stop_restores_everything(host, record_property):
    enrich_uplink(host)
    before = snapshot(host)
    mac = link_of(host, "eth0")["address"]
    with Pinger(host.dom0, host.router_ip) as pinger:
        ok(network_bridge(host, "start"))          # netdev from the default route: eth0, bridge eth0
        bridge, nic = link_of(host, "eth0"), link_of(host, "peth0")
        info = bridge["linkinfo"]["info_data"]
        assert bridge["linkinfo"]["info_kind"] == "bridge" and nic["master"] == "eth0"
        assert (bridge["address"], bridge["mtu"], info["stp_state"], info["forward_delay"]) == (mac, 1500, 0, 0)
        v4 = {(i["local"], i.get("label")) for a in host.addrs() if a["ifname"] == "eth0"
              for i in a["addr_info"] if i["family"] == "inet"}
        assert v4 == {(host.dom0_ip, "eth0"), (f"10.{host.k}.0.3", "eth0:1")}
        assert any(i["local"] == "fd00:1::2" and i["valid_life_time"] < 4294967295
                   for a in host.addrs() if a["ifname"] == "eth0" for i in a["addr_info"])
        routes = {(r["dst"], r.get("dev"), r.get("metric")) for r in host.routes(host.dom0, "table", "all")
                  if r.get("gateway") == host.router_ip}
        assert routes == {("default", "eth0", None), ("192.0.2.0/24", "eth0", 20), ("198.51.100.0/24", "eth0", 5)}

        started = snapshot(host)
        ok(network_bridge(host, "start"))          # again: a no-op
        assert snapshot(host) == started

        status = ok(network_bridge(host, "status", "--json"))
        report = json.loads(status.stdout)
        assert report["started"] and report["nic"] == "peth0" and report["ports"] == ["peth0"]

        host.add_guest(1, bridge="eth0")           # a guest plugged by our vif-bridge reaches the LAN
        ok(vif_bridge(host, 1))
        assert host.ping(host.guests[(1, 0)].ns, host.router_ip)
        refused = network_bridge(host, "stop")
        assert refused.returncode == 1 and "vif1.0" in refused.stderr and "force=yes" in refused.stderr
        ok(vif_bridge(host, 1, "offline"))
        host.remove_guest_link(1)

        ok(network_bridge(host, "stop"))
        assert host.ping(host.dom0, host.router_ip)
        sent, received = pinger.stop()
    assert snapshot(host) == before
    lost = sent - received
    record_property("pings_lost", lost)
    print(f"\ndom0 -> router pinger: {sent} sent, {lost} lost across start, start, stop", file=sys.stderr)
    assert received > 0


def test_seed_recipe_mybridge_keeps_the_nic_name(host):
    before = snapshot(host)
    ok(network_bridge(host, "start", "netdev=eth0", "bridge=mybridge"))
    assert link_of(host, "eth0")["master"] == "mybridge" and host.link("peth0") is None
    guest = host.add_guest(2, bridge="mybridge")
    ok(vif_bridge(host, 2))
    assert host.ping(guest.ns, host.router_ip)
    assert host.ping(host.dom0, host.router_ip)
    ok(network_bridge(host, "stop", "netdev=eth0", "bridge=mybridge", "force=yes"))
    host.remove_guest_link(2)
    assert snapshot(host) == before


def test_vifnum_wrapper_two_uplinks_then_bridges_from_the_config_file(host, tmp_path):
    router1 = host.add_uplink("eth1", 1)
    before = snapshot(host)
    wrapper = tmp_path / "my-network-script"
    wrapper.write_text(f'#!/bin/sh\ndir={BIN}\n"$dir/network-bridge" "$@" vifnum=0\n'
                       '"$dir/network-bridge" "$@" vifnum=1\n')
    wrapper.chmod(0o755)
    ok(network_bridge(host, "start", script=[str(wrapper)]))
    assert link_of(host, "eth0")["master"] == "xenbr0" and link_of(host, "eth1")["master"] == "xenbr1"
    assert guest_reaches(host, 3, "xenbr1", 1, router1)
    # a bare stop handles each bridges= pair of the host's configuration file
    (tmp_path / "conf").write_text("bridges=xenbr0:eth0 xenbr1:eth1\n")
    ok(network_bridge(host, "stop", env={"XENSCRIPTS_CONF": str(tmp_path / "conf")}))
    assert snapshot(host) == before


def test_vlan_named_uplink_and_tx_offload(host):
    router = host.add_uplink("eth0.293", 2, lan_name="lan293")
    before = snapshot(host)

    def tx_checksum() -> str:
        out = host.sh(host.dom0, "ethtool", "-k", "eth0.293").stdout
        return next(line.split(":")[1].split()[0] for line in out.splitlines()
                    if line.startswith("tx-checksumming:"))

    assert tx_checksum() == "on"
    ok(network_bridge(host, "start", "netdev=eth0.293", "bridge=xen-br293", "antispoof=no", "tx_offload=off"))
    assert link_of(host, "eth0.293")["master"] == "xen-br293" and tx_checksum() == "off"
    assert guest_reaches(host, 4, "xen-br293", 2, router)
    ok(network_bridge(host, "stop", "netdev=eth0.293", "bridge=xen-br293", "tx_offload=off"))
    assert tx_checksum() == "on"
    assert snapshot(host) == before


def _has_8021q(host: SimHost) -> bool:
    probe = host.ip(host.dom0, "link", "add", "link", "eth0", "name", "probe.7", "type", "vlan", "id", "7",
                    check=False)
    host.ip(host.dom0, "link", "del", "probe.7", check=False)
    return probe.returncode == 0


def test_vlan_created_by_start_carries_tagged_traffic(host):
    if not _has_8021q(host):
        pytest.skip("this kernel has no 802.1Q VLAN support (8021q module): tagged traffic cannot be tested here")
    host.ip(host.lan, "link", "add", "link", "lan0", "name", "lan0.293", "type", "vlan", "id", "293")
    host.ip(host.lan, "addr", "add", f"10.{host.k}.3.1/24", "dev", "lan0.293")
    host.ip(host.lan, "link", "set", "lan0.293", "up")
    before = snapshot(host)
    ok(network_bridge(host, "start", "netdev=eth0", "vlan=293", "bridge=xen-br293"))
    assert link_of(host, "eth0.293")["master"] == "xen-br293"
    assert guest_reaches(host, 5, "xen-br293", 3, f"10.{host.k}.3.1")
    ok(network_bridge(host, "stop", "netdev=eth0", "vlan=293", "bridge=xen-br293"))
    assert host.link("eth0.293") is None
    assert snapshot(host) == before


def test_a_failure_at_every_step_puts_the_host_back(host):
    enrich_uplink(host)
    before = snapshot(host)
    args = ("start", "antispoof=yes", "tx_offload=off")
    plan = json.loads(ok(network_bridge(host, *args, "--dry-run", "--json")).stdout)
    assert snapshot(host) == before
    steps = plan["steps"]
    assert len(steps) > 15
    for number, step in enumerate(steps, 1):
        cp = network_bridge(host, *args, script=failing_step(number))
        assert cp.returncode == 1 and f"step {number} of {len(steps)} ({step['step']})" in cp.stderr, cp.stderr
        assert snapshot(host) == before, f"not restored after a failure at step {number}: {step['step']}"
    # and stop: a failure at any of its steps leaves the bridge as start built it
    ok(network_bridge(host, *args))
    started = snapshot(host)
    stop = ("stop", "antispoof=yes", "tx_offload=off")
    steps = json.loads(ok(network_bridge(host, *stop, "--dry-run", "--json")).stdout)["steps"]
    for number, step in enumerate(steps, 1):
        cp = network_bridge(host, *stop, script=failing_step(number))
        assert cp.returncode == 1 and f"step {number} of {len(steps)}" in cp.stderr, cp.stderr
        assert snapshot(host) == started, f"stop not undone after a failure at step {number}: {step['step']}"
    ok(network_bridge(host, *stop))
    assert snapshot(host) == before


def test_bad_inputs_change_nothing(host):
    host.add_uplink("eth1", 1)
    host.add_bridge("br9", uplink=False)
    host.ip(host.dom0, "link", "set", "eth1", "master", "br9")
    before = snapshot(host)
    cases = [
        (("start", "netdev=eth9"), "netdev eth9 does not exist"),
        (("start", "netdev=eth0", "bridge=a-much-too-long-name"), "invalid bridge name"),
        (("start", "netdev=eth1", "bridge=xenbr1"), "already a port of bridge br9"),
        (("restart",), "Unknown command: restart\nValid commands are: start, stop, status\n"),
        (("start", "vlan=x"), "invalid vlan"),
    ]
    for args, message in cases:
        cp = network_bridge(host, *args)
        assert cp.returncode == 1 and message in cp.stderr, (args, cp.stderr)
        assert snapshot(host) == before, args
    assert ok(network_bridge(host, "start", "bridge=null")).stderr == ""
    assert snapshot(host) == before


def _forward_drops(host: SimHost) -> bool:
    """True when dom0's forward path drops by default: iptables-save's FORWARD policy or an nft forward hook."""
    out = host.sh(host.dom0, "iptables-save", "-t", "filter", check=False).stdout
    if any(line.startswith(":FORWARD DROP") for line in out.splitlines()):
        return True
    ruleset = json.loads(host.sh(host.dom0, "nft", "-j", "list", "ruleset", check=False).stdout or "{}")
    return any(item.get("chain", {}).get("hook") == "forward" and item["chain"].get("policy") == "drop"
               for item in ruleset.get("nftables", []))


def test_antispoof_through_the_firewall_layer_and_stop_undoes_it(host):
    ok(network_bridge(host, "start", "antispoof=yes"))
    assert _forward_drops(host)
    assert host.ping(host.dom0, host.router_ip)
    ok(network_bridge(host, "stop", "antispoof=yes"))
    assert not _forward_drops(host)
