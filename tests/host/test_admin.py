"""``xenscripts status|check|show`` on the simulated host, run in dom0's namespace as an admin would.

Observed independently with ``ip -j``, ``bridge -j`` and the simulated
xenstored's own store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import REPO, our_command
from xensim.poll import wait_until
from xensim.routed import run_network, state_dir

DAEMON_MODE = os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon"


def admin_env(host: SimHost, tmp_path: Path) -> dict[str, str]:
    """The admin command's environment: this host's xenstored, a private config file and script dir."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    daemon_log = {"XENSCRIPTS_HOTPLUGD_LOG": os.environ["XENSCRIPTS_SOCKET"] + ".log"} if DAEMON_MODE else {}
    return daemon_log | {"PATH": os.environ["PATH"], "XENSTORED_PATH": host.xs.path,
            "XENSCRIPTS_CONF": str(tmp_path / "xenscripts.conf"), "XENSCRIPTS_SCRIPT_DIR": str(scripts),
            "XENSCRIPTS_LOG_FILE": host.log_file, "XENSCRIPTS_LOCK_DIR": host.lock_dir,
            "XENSCRIPTS_STATE_DIR": os.path.join(host.workdir, "run"),
            "XENSCRIPTS_SYSLOG": "",
            "XENSCRIPTS_SOCKET": os.environ.get("XENSCRIPTS_SOCKET", f"{host.workdir}/no-hotplugd.sock")}


def xenscripts(host: SimHost, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", host.dom0, sys.executable, "-m", "xenscripts.admin.main",
                           *args], capture_output=True, text=True, env=admin_env(host, tmp_path), cwd=REPO,
                          timeout=60, stdin=subprocess.DEVNULL, check=False)


def online(host: SimHost, domid: int, script: str = "vif-bridge") -> None:
    cp = host.run_hotplug(our_command(script), domid, command="online", extra_env={"XENSCRIPTS_SYSLOG": ""})
    assert cp.returncode == 0, cp.stderr


def ip_addrs(host: SimHost, name: str) -> list[str]:
    return [f"{i['local']}/{i['prefixlen']}" for a in host.addrs() if a["ifname"] == name
            for i in a.get("addr_info", []) if not (i["family"] == "inet6" and i.get("scope") == "link")]


@pytest.fixture
def plugged(simhost: SimHost) -> SimHost:
    """xenbr0 with guests 1 (online), 2 (renamed web2, online), 3 (not plugged) and 4 routed by hand."""
    simhost.add_guest(1)
    simhost.add_guest(2, vifname="web2", ip="10.9.9.2")
    simhost.add_guest(3)
    simhost.add_guest(4, script="/etc/xen/scripts/vif-route", bridge=None, ip=simhost.guest_ip(4))
    online(simhost, 1)
    online(simhost, 2)
    simhost.ip(simhost.dom0, "link", "set", "vif4.0", "up")
    simhost.ip(simhost.dom0, "route", "add", f"{simhost.guest_ip(4)}/32", "dev", "vif4.0")
    return simhost


def test_status_json_matches_ip_bridge_and_xenstore(plugged: SimHost, tmp_path: Path) -> None:
    host = plugged
    cp = xenscripts(host, tmp_path, "status", "--json")
    assert cp.returncode == 0, cp.stderr
    status = json.loads(cp.stdout)
    links = {link["ifname"]: link for link in host.links()}
    ports = {p["ifname"]: p.get("master") for p in host.bridge_ports()}

    [bridge] = status["networks"]["bridges"]
    assert bridge["name"] == "xenbr0"
    assert sorted(bridge["uplinks"] + bridge["vifs"]) == sorted(n for n, m in ports.items() if m == "xenbr0")
    assert bridge["addresses"] == ip_addrs(host, "xenbr0")
    assert bridge["mtu"] == links["xenbr0"]["mtu"]

    nics = {(n["domid"], n["devid"]): n for n in status["nics"]}
    assert sorted(nics) == sorted(host.guests)
    for (domid, devid), guest in host.guests.items():
        nic = nics[(domid, devid)]
        vif = guest.vifname or guest.vif
        be = guest.backend
        assert nic["vif"] == vif
        assert nic["name"] == host.xs.read(f"/local/domain/{domid}/name")
        assert nic["mac"] == host.xs.read(f"{be}/mac")
        assert nic["hotplug_status"] == (host.xs.read(f"{be}/hotplug-status") or "")
        assert nic["bridge"] == links[vif].get("master")
        assert nic["mtu"] == links[vif]["mtu"]
        assert nic["vif_mac"] == links[vif]["address"]
        assert nic["addresses"] == (host.xs.read(f"{be}/ip") or "").split()
    assert nics[(2, 0)]["vif"] == "web2" and nics[(2, 0)]["bridge"] == "xenbr0"
    saved = host.sh(host.dom0, "iptables-save").stdout                     # our compat rules, as plugged
    legacy = host.sh(host.dom0, "cat /proc/net/ip_tables_names /proc/net/ip6_tables_names").stdout.strip()
    assert status["firewall"]["auto_picks"] == ("legacy" if legacy else "nft")
    for (domid, _), nic in nics.items():
        assert nic["firewall"]["rules"] == (f" {nic['vif']} " in saved) == (domid in (1, 2)), nic
    assert nics[(3, 0)]["bridge"] is None and nics[(3, 0)]["hotplug_status"] == ""
    routed = status["networks"]["routed"]
    assert routed["vifs"] == ["vif4.0"]
    assert [r["dst"] for r in routed["routes"]] == [f"{r['dst']}/32" for r in host.routes(None, "dev", "vif4.0")]
    assert nics[(4, 0)]["kind"] == "route" and nics[(4, 0)]["routes"] == [f"{host.guest_ip(4)}/32"]
    daemon = status["hotplugd"]
    assert daemon["answers"] is DAEMON_MODE
    if DAEMON_MODE:  # the two onlines above went through it (and other tests' requests)
        assert daemon["served"] >= 2 and daemon["median_ms"] > 0
    else:
        assert daemon["served"] == daemon["median_ms"] == "unknown"
    assert {s["name"]: s["owner"] for s in status["scripts"]}["vif-bridge"] == "missing"
    assert status["unknown_vifs"] == []
    host.ip(host.dom0, "link", "add", "vif9.0", "type", "veth", "peer", "name", "x9")  # no backend has it
    host.ip(host.dom0, "link", "set", "vif9.0", "master", "xenbr0")
    again = json.loads(xenscripts(host, tmp_path, "status", "--json").stdout)
    assert [(v["vif"], v["bridge"]) for v in again["unknown_vifs"]] == [("vif9.0", "xenbr0")]

    text = xenscripts(host, tmp_path, "status")
    assert text.returncode == 0, text.stderr
    for vif in ("vif1.0", "web2", "vif3.0", "vif4.0", "guest1", "guest4"):
        assert vif in text.stdout


def drifts(cp: subprocess.CompletedProcess) -> set[tuple[str, str]]:
    """(kind, subject) of every drift ``check --json`` reports."""
    return {(d["kind"], d["subject"]) for d in json.loads(cp.stdout)["drifts"]}


def test_check_names_each_drift_fix_repairs_it_and_a_second_check_is_clean(plugged: SimHost, tmp_path: Path) -> None:
    host = plugged
    host.ip(host.dom0, "route", "del", f"{host.guest_ip(4)}/32", "dev", "vif4.0")  # guest 4 is not ours to check
    host.xs.write("/local/domain/0/backend/vif/4/0/hotplug-status", "")
    clean = xenscripts(host, tmp_path, "check")
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr

    host.ip(host.dom0, "link", "set", "vif1.0", "nomaster")                   # vif off its bridge
    host.ip(host.dom0, "link", "set", "web2", "mtu", "9000")                  # MTU not the bridge's
    host.ip(host.dom0, "link", "set", "web2", "down")                         # vif down
    host.ip(host.dom0, "link", "add", "vif9.0", "type", "veth", "peer", "name", "x9")
    host.ip(host.dom0, "link", "set", "vif9.0", "up")
    host.ip(host.dom0, "route", "add", "10.200.0.9/32", "dev", "vif9.0")     # route of a vif no backend has
    lock = Path(host.lock_dir) / "iptables"                                   # a lock no one holds
    lock.write_text("")
    os.utime(lock, (1, 1))
    be3 = "/local/domain/0/backend/vif/3/0"                                   # a failed online
    host.xs.write(f"{be3}/hotplug-error", "vif3.0 could not be added to xenbr0")
    host.xs.write(f"{be3}/hotplug-status", "error")

    found = xenscripts(host, tmp_path, "check", "--json")
    assert found.returncode == 1, found.stderr
    assert drifts(found) == {("vif-off-bridge", "vif1.0"), ("mtu", "web2"), ("vif-down", "web2"),
                             ("stale-route", "vif9.0"), ("stale-lock", str(lock)), ("hotplug-error", "vif3.0")}
    text = xenscripts(host, tmp_path, "check")
    assert text.returncode == 1 and "DRIFT vif-off-bridge vif1.0" in text.stdout

    fixed = xenscripts(host, tmp_path, "check", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "FIXED" in fixed.stdout and fixed.stdout.rstrip().endswith("configuration say")
    assert host.master_of("vif1.0") == "xenbr0" and host.master_of("vif3.0") == "xenbr0"
    web2 = host.link("web2")
    assert web2["mtu"] == host.link("xenbr0")["mtu"] and "UP" in web2["flags"]
    assert host.routes(None, "dev", "vif9.0") == [] and not lock.exists()
    assert host.xs.read(f"{be3}/hotplug-status") == "connected"
    again = xenscripts(host, tmp_path, "check", "--json")
    assert again.returncode == 0 and drifts(again) == set(), again.stdout


def test_check_names_what_only_the_admin_can_fix(simhost: SimHost, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "vif-bridge").write_text("#!/usr/bin/python3 -IS\n# xenscripts entry point\n")
    (scripts / "vif-bridge.dpkg-new").write_text("#!/bin/bash\n# a newer upstream\n")
    venv = tmp_path / "oldvenv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.9.2\n")
    env = admin_env(simhost, tmp_path) | {"XENSCRIPTS_VENV": str(venv)}
    cp = subprocess.run(["ip", "netns", "exec", simhost.dom0, sys.executable, "-m", "xenscripts.admin.main",
                         "check", "--fix"], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                        stdin=subprocess.DEVNULL, check=False)
    assert cp.returncode == 1
    assert "DRIFT dpkg-new vif-bridge" in cp.stdout and "DRIFT venv-python venv" in cp.stdout
    assert "made by Python 3.9" in cp.stdout and "xenscripts install" in cp.stdout
    assert (scripts / "vif-bridge.dpkg-new").exists()


def test_show_svg_names_every_vif_and_guest(plugged: SimHost, tmp_path: Path) -> None:
    host = plugged
    svg = tmp_path / "xen.svg"
    cp = xenscripts(host, tmp_path, "show", "-o", str(svg))
    assert cp.returncode == 0, cp.stderr
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in text
    for guest in host.guests.values():
        assert f">{guest.vifname or guest.vif}<" in text
        assert f">{host.xs.read(f'/local/domain/{guest.domid}/name')}<" in text
    assert ">eth0<" in text and ">xenbr0<" in text
    tree = xenscripts(host, tmp_path, "show", "--format", "text")
    assert tree.returncode == 0 and tree.stdout.startswith("eth0 ══ xenbr0")


def test_check_names_missing_and_leftover_firewall_rules_and_fix_repairs_them(plugged: SimHost, tmp_path: Path) -> None:
    host = plugged
    host.xs.write("/local/domain/0/backend/vif/4/0/hotplug-status", "")   # guest 4 was routed by hand
    rules = host.sh(host.dom0, "iptables-save").stdout + host.sh(host.dom0, "nft list ruleset").stdout
    assert " vif1.0 " in rules and " web2 " in rules                       # our compat rules, as plugged
    host.xs.rm("/local/domain/0/backend/vif/2")                            # guest 2 destroyed, its vif too,
    host.ip(host.dom0, "link", "del", "web2")                              # but its rules stay behind
    for way in ("--physdev-out", "--physdev-in"):                          # and vif1.0's rules are gone
        host.sh(host.dom0, "iptables", "-D", "FORWARD", "-m", "physdev", way, "vif1.0", "--physdev-is-bridged",
                "-j", "xs-vif1.0")
    host.sh(host.dom0, "iptables", "-F", "xs-vif1.0")
    host.sh(host.dom0, "iptables", "-X", "xs-vif1.0")
    found = xenscripts(host, tmp_path, "check", "--json")
    assert found.returncode == 1
    assert drifts(found) == {("rules-missing", "vif1.0"), ("stale-rules", "web2")}, found.stdout
    fixed = xenscripts(host, tmp_path, "check", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    rules = host.sh(host.dom0, "iptables-save").stdout + host.sh(host.dom0, "nft list ruleset").stdout
    assert " vif1.0 " in rules and "web2" not in rules


def dhcp_server(host: SimHost) -> bool:
    """A DHCP server listens in dom0 (``ss``, the independent observer)."""
    return "dnsmasq" in host.sh(host.dom0, "ss", "-H", "-ulpn", "sport = :67").stdout


@pytest.fixture
def routed_host(require_root, xenstored):
    """No bridge: network-route and network-nat started, a routed guest 3 and a NAT guest 4 online."""
    host = SimHost(xenstored)
    env = {"XENSCRIPTS_STATE_DIR": state_dir(host), "XENSCRIPTS_SYSLOG": "", "dhcp": "yes"}
    try:
        host.add_guest(3, bridge=None, script="/etc/xen/scripts/vif-route", ip=host.guest_ip(3))
        host.add_guest(4, bridge=None, script="/etc/xen/scripts/vif-nat", guest_addr="")
        for argv in (["network-route", "start"], ["network-nat", "start", "dhcp=yes"]):
            cp = run_network(host, *argv)
            assert cp.returncode == 0, cp.stderr
        for domid, script in ((3, "vif-route"), (4, "vif-nat")):
            cp = host.run_hotplug(our_command(script), domid, extra_env=env)
            assert cp.returncode == 0, cp.stderr
        yield host
        for domid, script in ((3, "vif-route"), (4, "vif-nat")):
            host.run_hotplug(our_command(script), domid, command="offline", extra_env=env)
        for name in ("network-nat", "network-route"):
            run_network(host, name, "stop")
    finally:
        host.close()


def test_routed_and_nat_networks_status_check_and_fix(routed_host: SimHost, tmp_path: Path) -> None:
    host = routed_host
    status = json.loads(xenscripts(host, tmp_path, "status", "--json").stdout)
    nets = status["networks"]
    assert nets["routed"]["started_on"] == ["eth0"] and nets["routed"]["vifs"] == ["vif3.0"]
    assert nets["nat"]["started_on"] == ["eth0"] and nets["nat"]["masquerade"] == ["eth0"]
    assert nets["nat"]["dhcp"] == {"eth0": "yes"} and nets["nat"]["dnsmasq_running"] is dhcp_server(host) is True
    assert nets["routed"]["ip_forward"] == host.sh(host.dom0, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    nics = {n["vif"]: n for n in status["nics"]}
    for vif in ("vif3.0", "vif4.0"):
        dsts = sorted(f"{r['dst']}/32" for r in host.routes(None, "dev", vif))
        assert sorted(nics[vif]["routes"]) == dsts and dsts
        assert nics[vif]["vif_addresses"] == ip_addrs(host, vif)
    clean = xenscripts(host, tmp_path, "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    host.sh(host.dom0, "sysctl", "-w", "net.ipv4.ip_forward=0")                 # forwarding off again
    host.ip(host.dom0, "route", "del", f"{host.guest_ip(3)}/32", "dev", "vif3.0")  # a guest route gone
    host.sh(host.dom0, "nft flush ruleset")                                       # every rule gone
    host.sh(host.dom0, "sysctl", "-w", "net/ipv4/conf/vif3.0/proxy_arp=0")       # proxy ARP off
    host.ip(host.dom0, "addr", "flush", "dev", "vif4.0")                          # the NAT router address gone
    assert dhcp_server(host)
    pid = int(Path(state_dir(host), "dnsmasq", "pid").read_text())              # dnsmasq gone
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"))  # and reaped (init adopted it)
    assert not dhcp_server(host)
    found = xenscripts(host, tmp_path, "check", "--json")
    assert found.returncode == 1
    assert drifts(found) == {("route-missing", "vif3.0"), ("network-sysctl", "eth0"), ("masquerade-missing", "eth0"),
                             ("rules-missing", "vif3.0"), ("rules-missing", "vif4.0"), ("sysctl", "vif3.0"),
                             ("address-missing", "vif4.0"), ("route-missing", "vif4.0"),
                             ("dhcp-server-down", "eth0")}, found.stdout
    fixed = xenscripts(host, tmp_path, "check", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert host.sh(host.dom0, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert host.routes(None, "dev", "vif3.0") and host.routes(None, "dev", "vif4.0") and ip_addrs(host, "vif4.0")
    assert host.sh(host.dom0, "sysctl", "-n", "net/ipv4/conf/vif3.0/proxy_arp").stdout.strip() == "1"
    assert dhcp_server(host)
    svg = tmp_path / "routed.svg"
    assert xenscripts(host, tmp_path, "show", "-o", str(svg)).returncode == 0
    text = svg.read_text()
    assert all(f">{name}<" in text for name in ("vif3.0", "vif4.0", "guest3", "guest4", "eth0"))


def test_a_configured_bridge_that_is_gone_is_built_again(simhost: SimHost, tmp_path: Path) -> None:
    (tmp_path / "xenscripts.conf").write_text("bridges=xenbr0:eth0\n")
    assert xenscripts(simhost, tmp_path, "check").returncode == 0
    simhost.ip(simhost.dom0, "link", "del", "xenbr0")
    found = xenscripts(simhost, tmp_path, "check", "--json")
    assert found.returncode == 1 and drifts(found) == {("bridge-missing", "xenbr0")}, found.stdout
    fixed = xenscripts(simhost, tmp_path, "check", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert simhost.master_of("eth0") == "xenbr0"
    simhost.ip(simhost.dom0, "link", "set", "eth0", "nomaster")
    manual = xenscripts(simhost, tmp_path, "check", "--fix")
    assert manual.returncode == 1 and "ip link set eth0 master xenbr0" in manual.stdout


def unit_capabilities() -> list[str]:
    """The capabilities the hotplugd unit leaves the daemon (its CapabilityBoundingSet=)."""
    unit = (REPO / "systemd" / "xenscripts-hotplugd.service").read_text()
    [line] = [x for x in unit.splitlines() if x.startswith("CapabilityBoundingSet=")]
    return line.split("=", 1)[1].split()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_hotplugd_serves_with_only_the_capabilities_its_unit_leaves_it(simhost: SimHost, tmp_path: Path) -> None:
    bounding = ",".join(["-all", *(f"+{cap.removeprefix('CAP_').lower()}" for cap in unit_capabilities())])
    sock = str(tmp_path / "capped.sock")
    simhost.add_guest(1, ip=simhost.guest_ip(1))
    with HotplugDaemon(sock, prefix=("setpriv", f"--bounding-set={bounding}")) as daemon:
        assert daemon.proc is not None
        caps = int(Path(f"/proc/{daemon.proc.pid}/status").read_text().split("CapEff:")[1].split()[0], 16)
        assert caps != 0 and caps & (1 << 21) and not caps & (1 << 19)  # CAP_SYS_ADMIN kept, CAP_SYS_PTRACE gone
        cp = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env={"XENSCRIPTS_SOCKET": sock,
                                                                          "XENSCRIPTS_SYSLOG": ""})
        assert cp.returncode == 0, cp.stderr
        assert daemon.served() == 1, Path(daemon.log_path).read_text()
    assert simhost.master_of("vif1.0") == "xenbr0"
    assert simhost.xs.read("/local/domain/0/backend/vif/1/0/hotplug-status") == "connected"
    assert " vif1.0 " in simhost.sh(simhost.dom0, "iptables-save").stdout  # its firewall rules too
