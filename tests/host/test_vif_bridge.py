"""vif-bridge on a simulated Xen host: our script, started the installed way, observed with iproute2.

Every run goes through ``our_command("vif-bridge")`` with libxl's argv and
environment (SimHost.run_hotplug); results are read back with ``ip -j -d
link``, ``bridge -j link``, pings and the simulated xenstored's own store.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from xensim.host import SimHost
from xensim.ours import our_command
from xensim.xenstored import XenstoreServer

DUMMY_MAC = "fe:ff:ff:ff:ff:ff"
# fields that change by themselves: timers, counters, carrier state, the qdisc the kernel attaches on
# the first "up" (noop -> noqueue, never undone by a "down")
VOLATILE = ("timer", "stats", "operstate", "qdisc")
CARRIER_FLAGS = {"LOWER_UP", "NO-CARRIER", "M-DOWN", "DORMANT"}


# ------------------------------------------------------------------ helpers
def hotplug(host: SimHost, domid: int, command: str = "online", devid: int = 0, *, type_if: str = "vif",
            extra_args=(), extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {"XENSCRIPTS_SYSLOG": ""}
    env.update(extra_env or {})
    return host.run_hotplug(our_command("vif-bridge"), domid, devid, command, type_if=type_if,
                            extra_args=extra_args, extra_env=env)


def ok(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert cp.returncode == 0, f"exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp


def _strip(value):
    if isinstance(value, dict):
        out = {k: _strip(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
        if isinstance(out.get("flags"), list):
            out["flags"] = sorted(set(out["flags"]) - CARRIER_FLAGS)
        return out
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def snapshot(host: SimHost) -> dict:
    """dom0's links (``ip -j -d link``), addresses and bridge ports, without self-changing fields."""
    links = sorted(_strip(host.links()), key=lambda x: x["ifname"])
    # IPv6 link-local addresses appear by themselves (autoconf) a moment after a link comes up
    addrs = sorted(((a["ifname"], i.get("local"), i.get("prefixlen"))
                    for a in host.addrs() for i in a.get("addr_info", [])
                    if not (i.get("family") == "inet6" and i.get("scope") == "link")), key=str)
    ports = sorted(_strip(host.bridge_ports()), key=lambda x: x["ifname"])
    return {"links": links, "addrs": addrs, "ports": ports}


def port(host: SimHost, name: str) -> dict | None:
    """What matters about a would-be bridge port, from ``ip -j -d link``."""
    link = host.link(name)
    if link is None:
        return None
    return {"name": link["ifname"], "master": link.get("master"), "up": "UP" in link["flags"],
            "mac": link["address"], "mtu": link["mtu"], "altnames": link.get("altnames", [])}


def ipv4_of(host: SimHost, name: str) -> list[str]:
    return [i["local"] for a in host.addrs() if a["ifname"] == name
            for i in a.get("addr_info", []) if i["family"] == "inet"]


def bridge_port_names(host: SimHost, bridge: str) -> set[str]:
    """Ports of *bridge* as ``bridge -j link`` lists them."""
    return {p["ifname"] for p in host.bridge_ports() if p.get("master") == bridge}


def sys_master(host: SimHost, name: str) -> str | None:
    """The master as /sys/class/net in dom0 shows it (a second, independent observer)."""
    cp = host.sh(host.dom0, f"readlink /sys/class/net/{name}/master || true")
    return os.path.basename(cp.stdout.strip()) or None


def assert_fatal(cp, xs: XenstoreServer, guest, message: str, *, exact: bool = False) -> None:
    assert cp.returncode == 1, f"exit {cp.returncode}\nstderr: {cp.stderr}"
    error = xs.read(f"{guest.backend}/hotplug-error")
    assert error is not None
    if exact:
        assert error == message
    else:
        assert message in error, error
    assert xs.read(f"{guest.backend}/hotplug-status") == "error"
    assert message in cp.stderr


def reaches(host: SimHost, ns: str, ip: str, within: float = 10.0) -> bool:
    """Ping until a reply comes or *within* seconds pass.

    A single ``ping -w`` gives up at the first error, and an ARP entry that
    failed before the port existed answers "unreachable" for a moment.
    """
    deadline = time.monotonic() + within
    while True:
        if host.ping(ns, ip, timeout=1):
            return True
        if time.monotonic() >= deadline:
            return False


def write_hook(script_dir: Path, name: str, body: str) -> Path:
    hooks = script_dir / "vif-post.d"
    hooks.mkdir(parents=True, exist_ok=True)
    path = hooks / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# ------------------------------------------------------------------ traffic
def test_two_guests_reach_each_other_and_the_lan_only_after_online(simhost, xenstored):
    g1 = simhost.add_guest(1)
    g2 = simhost.add_guest(2)
    assert not simhost.ping(g1.ns, g2.ip, timeout=1)
    assert not simhost.ping(g2.ns, simhost.router_ip, timeout=1)
    for g in (g1, g2):  # forget the failed ARP lookups, or they answer "unreachable" for seconds
        simhost.ip(g.ns, "neigh", "flush", "all")
    ok(hotplug(simhost, 1))
    ok(hotplug(simhost, 2))
    assert reaches(simhost, g1.ns, g2.ip)
    assert reaches(simhost, g2.ns, g1.ip)
    assert reaches(simhost, g1.ns, simhost.router_ip)
    assert reaches(simhost, g2.ns, simhost.router_ip)
    assert reaches(simhost, simhost.lan, g1.ip)
    assert xenstored.read(f"{g1.backend}/hotplug-status") == "connected"
    assert xenstored.read(f"{g2.backend}/hotplug-status") == "connected"


# ------------------------------------------------------------------ port set-up
def test_online_sets_up_the_port(simhost, xenstored):
    g = simhost.add_guest(1)
    simhost.ip(simhost.dom0, "addr", "add", "192.0.2.7/24", "dev", g.vif)
    simhost.ip(simhost.dom0, "addr", "add", "198.51.100.7/24", "dev", g.vif)
    assert ipv4_of(simhost, g.vif)
    assert xenstored.read(f"{g.backend}/hotplug-status") == ""
    ok(hotplug(simhost, 1))
    p = port(simhost, g.vif)
    assert p["master"] == "xenbr0" and p["up"] and p["mac"] == DUMMY_MAC
    assert ipv4_of(simhost, g.vif) == []
    assert sys_master(simhost, g.vif) == "xenbr0"
    assert g.vif in bridge_port_names(simhost, "xenbr0")
    assert xenstored.read(f"{g.backend}/hotplug-status") == "connected"
    # the guest's own MAC is never touched
    assert simhost.link(g.guest_if, g.ns)["address"] == g.mac


# ------------------------------------------------------------------ MTU
def test_backend_mtu_is_applied_and_pushed_to_the_frontend(simhost, xenstored):
    g = simhost.add_guest(1, mtu=9000)
    assert xenstored.read(f"{g.backend}/mtu") == "9000"
    ok(hotplug(simhost, 1))
    assert simhost.link(g.vif)["mtu"] == 9000
    assert xenstored.read(f"{g.frontend}/mtu") == "9000"
    assert simhost.master_of(g.vif) == "xenbr0"


def test_without_mtu_key_the_vif_takes_the_bridges_mtu(simhost, xenstored):
    simhost.ip(simhost.dom0, "link", "set", "xenbr0", "mtu", "1400")
    assert simhost.link("xenbr0")["mtu"] == 1400
    g = simhost.add_guest(1)
    assert xenstored.read(f"{g.backend}/mtu") is None
    assert simhost.link(g.vif)["mtu"] == 1500
    ok(hotplug(simhost, 1))
    assert simhost.link(g.vif)["mtu"] == 1400
    assert simhost.link("xenbr0")["mtu"] == 1400
    assert xenstored.read(f"{g.frontend}/mtu") == "1400"


# ------------------------------------------------------------------ vifname
def test_vifname_renames_and_frontend_mtu_uses_the_backend_path(simhost, xenstored):
    g = simhost.add_guest(1, vifname="web1")
    ok(hotplug(simhost, 1))
    p = port(simhost, "web1")
    assert p is not None and p["master"] == "xenbr0" and p["up"] and p["mac"] == DUMMY_MAC
    assert "vif1.0" not in {link["ifname"] for link in simhost.links()}
    assert "web1" in bridge_port_names(simhost, "xenbr0")
    assert xenstored.read(f"{g.frontend}/mtu") == "1500"
    assert xenstored.ls("/local/domain/web1") == {}
    assert not any("web1" in path for path, _ in xenstored.writes)
    assert xenstored.read(f"{g.backend}/hotplug-status") == "connected"


def test_vifname_taken_by_another_interface_is_fatal_and_leaves_the_vif_alone(simhost, xenstored):
    simhost.add_guest(1, vifname="web1")
    ok(hotplug(simhost, 1))
    g2 = simhost.add_guest(2, vifname="web1")
    before = port(simhost, "vif2.0")
    web1_before = port(simhost, "web1")
    cp = hotplug(simhost, 2)
    assert_fatal(cp, xenstored, g2, "Cannot rename interface vif2.0. An interface with name web1 already exists.",
                 exact=True)
    after = port(simhost, "vif2.0")
    assert after == before
    assert after["master"] is None and not after["up"]
    assert port(simhost, "web1") == web1_before
    assert xenstored.read(f"{g2.frontend}/mtu") is None


# ------------------------------------------------------------------ idempotency
@pytest.mark.parametrize(("vifname", "mtu"), [(None, None), ("web1", None), ("web1", 9000)])
def test_online_twice_changes_nothing(simhost, xenstored, vifname, mtu):
    g = simhost.add_guest(1, vifname=vifname, mtu=mtu)
    ok(hotplug(simhost, 1))
    before = snapshot(simhost)
    writes = len(xenstored.writes)
    ok(hotplug(simhost, 1))
    assert snapshot(simhost) == before
    assert xenstored.read(f"{g.backend}/hotplug-status") == "connected"
    assert (f"{g.backend}/hotplug-status", "connected") in xenstored.writes[writes:]
    dev = vifname or g.vif
    assert simhost.master_of(dev) == "xenbr0"


# ------------------------------------------------------------------ offline
@pytest.mark.parametrize("vifname", [None, "web1"])
def test_offline_releases_the_port(simhost, xenstored, vifname):
    g = simhost.add_guest(1, vifname=vifname)
    ok(hotplug(simhost, 1))
    dev = vifname or g.vif
    assert simhost.master_of(dev) == "xenbr0"
    ok(hotplug(simhost, 1, "offline"))
    p = port(simhost, dev)
    assert p["master"] is None and not p["up"]
    assert sys_master(simhost, dev) is None
    assert dev not in bridge_port_names(simhost, "xenbr0")
    assert xenstored.read(f"{g.backend}/hotplug-error") is None


def test_offline_of_a_vanished_vif_is_quiet(simhost, xenstored):
    g = simhost.add_guest(1)
    ok(hotplug(simhost, 1))
    simhost.remove_guest_link(1)
    before = xenstored.ls(g.backend)
    writes = len(xenstored.writes)
    ok(hotplug(simhost, 1, "offline"))
    assert xenstored.writes[writes:] == []
    assert xenstored.ls(g.backend) == before


def test_offline_with_vanished_vif_and_backend_writes_nothing(simhost, xenstored):
    g = simhost.add_guest(1)
    ok(hotplug(simhost, 1))
    simhost.remove_guest_link(1)
    xenstored.rm(g.backend)
    writes = len(xenstored.writes)
    ok(hotplug(simhost, 1, "offline"))
    assert xenstored.writes[writes:] == []
    assert xenstored.ls(g.backend) == {}


def test_failed_offline_never_writes_into_a_removed_backend(simhost, xenstored):
    g = simhost.add_guest(1)
    ok(hotplug(simhost, 1))
    xenstored.rm(g.backend)
    writes = len(xenstored.writes)
    cp = hotplug(simhost, 1, "offline", extra_env={"vif": ""})
    assert cp.returncode == 1
    assert xenstored.writes[writes:] == []
    assert xenstored.ls(g.backend) == {}


def test_offline_with_an_impossible_bridge_name(simhost, xenstored):
    g = simhost.add_guest(1, bridge=None)
    ok(hotplug(simhost, 1))
    name = "averyveryverylongname"
    cp = hotplug(simhost, 1, "offline", extra_args=[f"bridge={name}"])
    assert "out of range" not in cp.stderr
    if cp.returncode == 0:
        assert not port(simhost, g.vif)["up"]
    else:
        assert cp.returncode == 1
        assert f"Invalid bridge name {name!r}" in (xenstored.read(f"{g.backend}/hotplug-error") or "")


def test_offline_when_the_bridge_is_gone(simhost, xenstored):
    g = simhost.add_guest(1)
    ok(hotplug(simhost, 1))
    simhost.ip(simhost.dom0, "link", "del", "xenbr0")
    writes = len(xenstored.writes)
    ok(hotplug(simhost, 1, "offline"))
    p = port(simhost, g.vif)
    assert p["master"] is None and not p["up"]
    assert not [w for w in xenstored.writes[writes:] if "hotplug" in w[0]]


# ------------------------------------------------------------------ fatal paths
def _fatal_case(host, xs, guest, message, *, command="online", extra_args=(), exact=False):
    before = snapshot(host)
    cp = hotplug(host, guest.domid, command, guest.devid, extra_args=extra_args)
    assert_fatal(cp, xs, guest, message, exact=exact)
    assert snapshot(host) == before
    p = port(host, guest.vif)
    assert p["master"] is None and not p["up"] and p["mac"] != DUMMY_MAC
    assert xs.read(f"{guest.frontend}/mtu") is None


def test_fatal_missing_vif_device(simhost, xenstored):
    g = simhost.add_guest(1)
    simhost.remove_guest_link(1)
    before = snapshot(simhost)
    cp = hotplug(simhost, 1)
    assert_fatal(cp, xenstored, g, "vif1.0")
    assert snapshot(simhost) == before
    assert xenstored.read(f"{g.frontend}/mtu") is None


def test_fatal_missing_bridge_device(simhost, xenstored):
    g = simhost.add_guest(1, bridge="br9")
    _fatal_case(simhost, xenstored, g, "Could not find bridge device br9 (bridges in dom0: xenbr0; "
                "set bridge=<one of them> in the vif spec)", exact=True)


def test_fatal_no_bridge_anywhere(bare_host, xenstored):
    g = bare_host.add_guest(1, bridge=None)
    _fatal_case(bare_host, xenstored, g, "Could not find bridge, and none was specified (dom0 has no bridge: "
                "create one with 'network-bridge start bridge=xenbr0 netdev=eth0'")


def test_fatal_no_bridge_after_xenbr0_was_deleted(simhost, xenstored):
    simhost.ip(simhost.dom0, "link", "del", "xenbr0")
    g = simhost.add_guest(1, bridge=None)
    _fatal_case(simhost, xenstored, g, "Could not find bridge, and none was specified (dom0 has no bridge")


def test_fatal_bridge_that_is_not_a_bridge(bare_host, xenstored):
    g = bare_host.add_guest(1, bridge="eth0")
    _fatal_case(bare_host, xenstored, g, "eth0 is not a bridge (dom0 has no bridge: create one with")


def test_fatal_multicast_guest_mac(simhost, xenstored):
    g = simhost.add_guest(1, extra_backend={"mac": "01:00:5e:00:00:01"})
    _fatal_case(simhost, xenstored, g, "01:00:5e:00:00:01")
    assert "multicast" in xenstored.read(f"{g.backend}/hotplug-error")


@pytest.mark.parametrize("mtu", ["abc", "1500.5", " ", "9000x", "-1", "70000"])
def test_fatal_bad_mtu(simhost, xenstored, mtu):
    g = simhost.add_guest(1, extra_backend={"mtu": mtu})
    _fatal_case(simhost, xenstored, g, f"Invalid MTU in {g.xenbus_path}/mtu {mtu!r}")


@pytest.mark.parametrize("vifname", ["bad/name", "has space", "x" * 16, "a:b", ".."])
def test_fatal_bad_vifname(simhost, xenstored, vifname):
    g = simhost.add_guest(1, vifname=vifname)
    _fatal_case(simhost, xenstored, g, f"Invalid vifname {vifname!r}")


# ------------------------------------------------------------------ rollback and hooks
@pytest.mark.parametrize("vifname", ["web1", None])
def test_failing_hook_rolls_everything_back(simhost, xenstored, tmp_path, vifname):
    g = simhost.add_guest(1, vifname=vifname)
    write_hook(tmp_path / "scripts", "10-fail.hook", "echo hook says no >&2; exit 1")
    before = port(simhost, g.vif)
    links_before = snapshot(simhost)["links"]
    cp = hotplug(simhost, 1, extra_env={"XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")})
    assert_fatal(cp, xenstored, g, "10-fail.hook")
    assert "hook says no" in xenstored.read(f"{g.backend}/hotplug-error")
    after = port(simhost, g.vif)
    assert after == before
    assert after["master"] is None and not after["up"] and after["mac"] != DUMMY_MAC
    assert simhost.link("web1") is None
    assert snapshot(simhost)["links"] == links_before


def test_failing_frontend_mtu_write_rolls_back_rename_and_enslave(simhost, xenstored):
    g = simhost.add_guest(1, vifname="web1", mtu=9000)
    before = port(simhost, g.vif)
    links_before = snapshot(simhost)["links"]
    xenstored.fail("/local/domain/1/device/vif/0/mtu", "EACCES")
    cp = hotplug(simhost, 1)
    assert_fatal(cp, xenstored, g, "Writing /local/domain/1/device/vif/0/mtu 9000 to xenstore failed")
    assert port(simhost, g.vif) == before
    assert simhost.link("web1") is None
    assert snapshot(simhost)["links"] == links_before


def test_failing_hook_restores_mtu_and_previous_bridge(simhost, xenstored, tmp_path):
    simhost.add_bridge("xenbr1", uplink=False)
    g = simhost.add_guest(1, mtu=9000, vifname="web1")
    simhost.ip(simhost.dom0, "link", "set", g.vif, "master", "xenbr1")
    write_hook(tmp_path / "scripts", "10-fail.hook", "exit 1")
    before = port(simhost, g.vif)
    assert before["master"] == "xenbr1" and before["mtu"] == 1500
    cp = hotplug(simhost, 1, extra_env={"XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")})
    assert_fatal(cp, xenstored, g, "10-fail.hook")
    assert port(simhost, g.vif) == before
    assert g.vif in bridge_port_names(simhost, "xenbr1")
    assert bridge_port_names(simhost, "xenbr0") == {"eth0"}


def test_failing_hook_rolls_back_an_up_vif_to_up(simhost, xenstored, tmp_path):
    g = simhost.add_guest(1, vifname="web1")
    simhost.ip(simhost.dom0, "link", "set", g.vif, "up")
    write_hook(tmp_path / "scripts", "10-fail.hook", "exit 3")
    before = port(simhost, g.vif)
    assert before["up"]
    cp = hotplug(simhost, 1, extra_env={"XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")})
    assert_fatal(cp, xenstored, g, "status 3")
    assert port(simhost, g.vif) == before


@pytest.mark.parametrize("vifname", [None, "web1"])
def test_successful_hook_sees_the_variables(simhost, xenstored, tmp_path, vifname):
    g = simhost.add_guest(1, vifname=vifname)
    out = tmp_path / "hook.out"
    write_hook(tmp_path / "scripts", "20-record.hook", f'echo "$dev $bridge $command $XENBUS_PATH" >> {out}')
    # not executable: must be skipped
    (tmp_path / "scripts" / "vif-post.d" / "30-skip.hook").write_text(f"#!/bin/bash\necho skipped >> {out}\n")
    env = {"XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")}
    ok(hotplug(simhost, 1, extra_env=env))
    ok(hotplug(simhost, 1, "offline", extra_env=env))
    dev = vifname or g.vif
    assert out.read_text().splitlines() == [
        f"{dev} xenbr0 online {g.xenbus_path}",
        f"{dev} xenbr0 offline {g.xenbus_path}",
    ]
    assert xenstored.read(f"{g.backend}/hotplug-status") == "connected"


# ------------------------------------------------------------------ choosing the bridge
def test_xenbr_name_falls_back_to_eth_bridge(simhost, xenstored):
    simhost.add_bridge("eth5", uplink=False)
    g = simhost.add_guest(1, bridge="xenbr5")
    ok(hotplug(simhost, 1))
    assert simhost.master_of(g.vif) == "eth5"
    assert g.vif in bridge_port_names(simhost, "eth5")
    assert simhost.link("xenbr5") is None


def test_xenbr_fallback_needs_eth_to_be_a_bridge(bare_host, xenstored):
    bare_host.add_bridge("xenbr0", uplink=False)
    g = bare_host.add_guest(1, bridge="xenbr9")
    bare_host.ip(bare_host.dom0, "link", "set", "eth0", "name", "eth9")
    _fatal_case(bare_host, xenstored, g, "Could not find bridge device xenbr9 (bridges in dom0: xenbr0; "
                "set bridge=<one of them> in the vif spec)", exact=True)


def test_bridge_is_discovered_when_none_is_named(simhost, xenstored, syslog):
    g = simhost.add_guest(1, bridge=None)
    ok(hotplug(simhost, 1, extra_env={"XENSCRIPTS_SYSLOG": syslog.path}))
    assert simhost.master_of(g.vif) == "xenbr0"
    assert xenstored.read(f"{g.backend}/hotplug-status") == "connected"
    syslog.wait_for(lambda p: any(x.endswith("Successful vif-bridge online for vif1.0, bridge xenbr0.") for x in p))


def test_xenstore_bridge_beats_argv_bridge(simhost, xenstored):
    simhost.add_bridge("xenbr1", uplink=False)
    g = simhost.add_guest(1, bridge="xenbr0")
    ok(hotplug(simhost, 1, extra_args=["bridge=xenbr1"]))
    assert simhost.master_of(g.vif) == "xenbr0"


def test_argv_bridge_is_used_without_xenstore_key(simhost, xenstored):
    simhost.add_bridge("xenbr1", uplink=False)
    g = simhost.add_guest(1, bridge=None)
    ok(hotplug(simhost, 1, extra_args=["bridge=xenbr1"]))
    assert simhost.master_of(g.vif) == "xenbr1"
    assert g.vif in bridge_port_names(simhost, "xenbr1")


def test_env_bridge_is_used_and_argv_beats_it(simhost, xenstored):
    simhost.add_bridge("xenbr1", uplink=False)
    simhost.add_bridge("xenbr2", uplink=False)
    simhost.add_guest(1, bridge=None)
    simhost.add_guest(2, bridge=None)
    ok(hotplug(simhost, 1, extra_env={"bridge": "xenbr1"}))
    ok(hotplug(simhost, 2, extra_env={"bridge": "xenbr1"}, extra_args=["bridge=xenbr2"]))
    assert simhost.master_of("vif1.0") == "xenbr1"
    assert simhost.master_of("vif2.0") == "xenbr2"


# ------------------------------------------------------------------ tap (qemu) NICs
def test_tap_add_and_remove(simhost, xenstored):
    g = simhost.add_guest(1, nic_type="ioemu")
    vif_before = port(simhost, g.vif)
    ok(hotplug(simhost, 1, "add", type_if="tap"))
    p = port(simhost, g.emu)
    assert p["master"] == "xenbr0" and p["up"] and p["mac"] == DUMMY_MAC
    assert g.emu in bridge_port_names(simhost, "xenbr0")
    assert port(simhost, g.vif) == vif_before            # the PV vif is not touched
    assert xenstored.read(f"{g.backend}/hotplug-status") == ""
    assert not [w for w in xenstored.writes if w[0].endswith("hotplug-status")]
    assert xenstored.read(f"{g.frontend}/mtu") is None
    ok(hotplug(simhost, 1, "remove", type_if="tap"))
    p = port(simhost, g.emu)
    assert p["master"] is None and not p["up"]
    assert xenstored.read(f"{g.backend}/hotplug-status") == ""


def test_tap_with_vifname_renames_with_emu_suffix(simhost, xenstored):
    g = simhost.add_guest(1, nic_type="ioemu", vifname="web1")
    ok(hotplug(simhost, 1, "add", type_if="tap"))
    assert simhost.master_of("web1-emu") == "xenbr0"
    assert simhost.link(g.vif)["ifname"] == "vif1.0"
    assert simhost.master_of(g.vif) is None


@pytest.mark.parametrize(("command", "type_if"), [("online", "tap"), ("offline", "tap"), ("add", "vif"),
                                                  ("remove", "vif")])
def test_type_mismatch_is_a_no_op(simhost, xenstored, command, type_if):
    simhost.add_guest(1, nic_type="ioemu")
    before = snapshot(simhost)
    store = xenstored.ls("/")
    ok(hotplug(simhost, 1, command, type_if=type_if))
    assert snapshot(simhost) == before
    assert xenstored.ls("/") == store
    assert xenstored.writes == []


# ------------------------------------------------------------------ injection
def test_injected_bridge_argument_is_not_run(simhost, xenstored, tmp_path):
    marker = tmp_path / "MARKER"
    g = simhost.add_guest(1, bridge=None)
    value = f"$(touch {marker})"
    _fatal_case(simhost, xenstored, g, value, extra_args=[f"bridge={value}"])
    assert not marker.exists()


def test_injected_hook_variable_is_not_run(simhost, xenstored, tmp_path):
    # a value that reaches a sourced hook stays data there too
    marker = tmp_path / "MARKER"
    out = tmp_path / "hook.out"
    simhost.add_guest(1)
    write_hook(tmp_path / "scripts", "20-record.hook", f'echo "$ip|$netdev|$foo" >> {out}')
    ok(hotplug(simhost, 1, extra_args=[f"netdev=$(touch {marker})", "foo=undocumented"],
               extra_env={"XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")}))
    # a documented variable arrives as data; an undocumented argv key does not arrive at all
    assert out.read_text() == f"|$(touch {marker})|\n"
    assert not marker.exists()


def test_state_is_json_serialisable_for_debugging(simhost):
    # guards the helpers themselves: snapshot() really sees the vif appear
    before = snapshot(simhost)
    simhost.add_guest(1)
    after = snapshot(simhost)
    assert before != after
    json.dumps(after)
