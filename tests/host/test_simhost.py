"""Tests of the simulated Xen host itself (xensim/host.py).

They prove the topology (pings), the xenstore shape (read back with the real
xenstore-utils clients), the exact libxl calling convention of run_hotplug,
that close() leaves nothing behind, and that Debian's own vif-bridge works
under the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from xensim.host import LIBXL_PATH, SimHost, SimHostError, list_sim_namespaces

UPSTREAM_VIF_BRIDGE = "/etc/xen/scripts/vif-bridge"

# Prints what a hotplug script sees: argv, environment, stdin, netns.  The
# environment comes from /proc/self/environ: the one exec() passed, before
# Python's own locale coercion (PEP 538) adds LC_CTYPE to os.environ.
DUMPER = """#!/usr/bin/python3 -IS
import json, os, sys
with open("/proc/self/environ", "rb") as f:
    env = dict(e.decode().split("=", 1) for e in f.read().split(b"\\0") if e)
st0 = os.fstat(0)
null = os.stat("/dev/null")
print(json.dumps({
    "argv": sys.argv,
    "env": env,
    "stdin_is_devnull": (st0.st_dev, st0.st_ino, st0.st_rdev) == (null.st_dev, null.st_ino,
                                                                  null.st_rdev),
    "netns": os.stat("/proc/self/ns/net").st_ino,
}))
"""


def _xs_env(xs) -> dict:
    return {"PATH": LIBXL_PATH, "XENSTORED_PATH": xs.path}


def _xenstore_ls(xs, path: str) -> dict[str, str]:
    """`xenstore-ls -f <path>` (the real client) parsed to {abs path: value}."""
    cp = subprocess.run(["xenstore-ls", "-f", path], env=_xs_env(xs), capture_output=True,
                        text=True, timeout=10, check=True)
    out = {}
    for line in cp.stdout.splitlines():
        key, _, val = line.partition(" = ")
        assert val.startswith('"') and val.endswith('"'), line
        out[key] = val[1:-1]
    return out


def _xenstore_read(xs, path: str, cwd_ns: str | None = None) -> str:
    cp = subprocess.run(["xenstore-read", path], env=_xs_env(xs), capture_output=True,
                        text=True, timeout=10, check=True)
    return cp.stdout.rstrip("\n")


def _leaves(tree: dict[str, str], base: str) -> dict[str, str]:
    """Leaf keys directly under base (directories have children, skip them)."""
    out = {}
    for k, v in tree.items():
        if k.startswith(base + "/"):
            rel = k[len(base) + 1:]
            if not any(o.startswith(k + "/") for o in tree):
                out[rel] = v
    return out


def _v4_addrs(h: SimHost) -> dict[str, list[str]]:
    return {a["ifname"]: [i["local"] for i in a.get("addr_info", []) if i["family"] == "inet"]
            for a in h.addrs()}


def _enslave(h: SimHost, vif: str, bridge: str = "xenbr0") -> None:
    h.ip(h.dom0, "link", "set", vif, "master", bridge)
    h.ip(h.dom0, "link", "set", vif, "up")


# ----------------------------------------------------------------- topology
def test_guest_pings_router_after_manual_enslave(simhost):
    h = simhost
    g = simhost.add_guest(1)
    vif = h.link(g.vif)
    assert vif is not None and "UP" not in vif["flags"] and "master" not in vif
    assert g.ip == h.guest_ip(1) and g.mac == "00:16:3e:00:01:00"
    geth = h.link("eth0", g.ns)
    assert geth["address"] == g.mac and "UP" in geth["flags"]
    assert not h.ping(g.ns, h.router_ip, timeout=1)      # fresh vif: down, no bridge

    _enslave(h, g.vif)
    assert h.ping(g.ns, h.router_ip)
    assert h.ping(h.lan, g.ip)
    assert h.ping(h.dom0, g.ip)                         # dom0's address is on xenbr0
    assert {p["ifname"] for p in h.bridge_ports()} == {"eth0", g.vif}


def test_two_guests_ping_each_other(simhost):
    h = simhost
    g1, g2 = h.add_guest(1), h.add_guest(2)
    assert g1.ns != g2.ns and g1.ip != g2.ip and g1.mac != g2.mac
    _enslave(h, g1.vif)
    _enslave(h, g2.vif)
    assert h.ping(g1.ns, g2.ip)
    assert h.ping(g2.ns, g1.ip)


def test_dom0_uplink_shape(xenstored, require_root):
    with SimHost(xenstored) as h:
        # before any bridge: a plain host, eth0 has the address and default route
        addrs = _v4_addrs(h)
        assert addrs["eth0"] == [h.dom0_ip]
        assert h.routes(h.dom0, "default")[0]["dev"] == "eth0"
        assert h.ping(h.dom0, h.router_ip)
        h.add_bridge("xenbr0")
        addrs = _v4_addrs(h)
        assert addrs["eth0"] == [] and addrs["xenbr0"] == [h.dom0_ip]
        assert h.routes(h.dom0, "default")[0]["dev"] == "xenbr0"
        assert h.master_of("eth0") == "xenbr0"
        assert h.ping(h.dom0, h.router_ip)
        # an internal bridge without uplink
        h.add_bridge("xenbr1", uplink=False, mtu=9000)
        br1 = h.link("xenbr1")
        assert br1["mtu"] == 9000 and br1["linkinfo"]["info_data"]["stp_state"] == 0
        assert br1["linkinfo"]["info_data"]["forward_delay"] == 0


# ----------------------------------------------------------------- xenstore
def test_backend_dir_has_libxl_shape(simhost):
    h, xs = simhost, simhost.xs
    h.add_guest(1)
    h.add_guest(3, ip="10.0.0.3 10.0.0.33", mtu=9000, vifname="web0", gatewaydev="eth0",
                mac="00:16:3E:AA:BB:CC", extra_backend={"rate": "1000000,50000"})

    be1 = "/local/domain/0/backend/vif/1/0"
    tree = _xenstore_ls(xs, "/local/domain/0/backend/vif")
    assert _leaves(tree, be1) == {
        "frontend": "/local/domain/1/device/vif/0",
        "frontend-id": "1",
        "online": "1",
        "state": "2",
        "script": UPSTREAM_VIF_BRIDGE,
        "mac": "00:16:3e:00:01:00",
        "bridge": "xenbr0",
        "handle": "0",
        "type": "vif",
        "hotplug-status": "",
    }
    assert _leaves(tree, "/local/domain/0/backend/vif/3/0") == {
        "frontend": "/local/domain/3/device/vif/0",
        "frontend-id": "3",
        "online": "1",
        "state": "2",
        "script": UPSTREAM_VIF_BRIDGE,
        "vifname": "web0",
        "mac": "00:16:3e:aa:bb:cc",
        "ip": "10.0.0.3 10.0.0.33",
        "gatewaydev": "eth0",
        "mtu": "9000",
        "bridge": "xenbr0",
        "handle": "0",
        "type": "vif",
        "hotplug-status": "",
        "rate": "1000000,50000",
    }
    front = _xenstore_ls(xs, "/local/domain/1")
    assert front["/local/domain/1/name"] == "guest1"
    assert _leaves(front, "/local/domain/1/device/vif/0") == {
        "backend": be1, "backend-id": "0", "state": "1", "handle": "0",
        "mac": "00:16:3e:00:01:00",
    }
    # relative paths, as scripts use them, resolve under /local/domain/0
    assert _xenstore_read(xs, "backend/vif/3/0/vifname") == "web0"
    cp = h.sh(h.dom0, "xenstore-read", "backend/vif/1/0/bridge", env=h.env_for(1))
    assert cp.stdout.strip() == "xenbr0"
    # mtu 1500 is the default: libxl does not write it
    h.add_guest(4, mtu=1500)
    assert xs.read("/local/domain/0/backend/vif/4/0/mtu") is None


def test_ioemu_guest_has_emu_link_and_type(simhost):
    h = simhost
    g = h.add_guest(5, nic_type="ioemu")
    assert g.emu == "vif5.0-emu"
    emu = h.link(g.emu)
    assert emu is not None and "UP" not in emu["flags"] and "master" not in emu
    assert h.link(g.emu_guest_if, g.ns)["address"] == g.mac
    assert h.xs.read(g.backend + "/type") == "vif_ioemu"
    env = h.env_for(5, type_if="tap")
    assert env["INTERFACE"] == "vif5.0-emu" and env["vif"] == "vif5.0"


def test_second_nic_shares_the_guest_namespace(simhost):
    h = simhost
    g0, g1 = h.add_guest(6, 0), h.add_guest(6, 1)
    assert g0.ns == g1.ns and g1.vif == "vif6.1" and g1.guest_if == "eth1"
    assert g1.mac == "00:16:3e:00:06:01" and g1.ip is None
    assert h.xs.read("/local/domain/0/backend/vif/6/1/handle") == "1"
    with pytest.raises(SimHostError, match="exists"):
        h.add_guest(6, 1)


# ----------------------------------------------------------------- run_hotplug
@pytest.fixture
def dumper(tmp_path):
    p = tmp_path / "dump-hotplug"
    p.write_text(DUMPER)
    p.chmod(0o755)
    return str(p)


def _dom0_netns_inode(h: SimHost) -> int:
    return os.stat(f"/run/netns/{h.dom0}").st_ino


def test_run_hotplug_is_exactly_libxl(simhost, dumper):
    h = simhost
    h.add_guest(1, script=dumper)
    cp = h.run_hotplug(dumper, 1)
    assert cp.returncode == 0, cp.stderr
    seen = json.loads(cp.stdout)
    assert seen["argv"] == [dumper, "online", "type_if=vif"]
    assert seen["env"] == {
        "PATH": LIBXL_PATH,
        "script": dumper,
        "XENBUS_TYPE": "vif",
        "XENBUS_PATH": "backend/vif/1/0",
        "XENBUS_BASE_PATH": "backend",
        "netdev": "",
        "vif": "vif1.0",
        "XENSTORED_PATH": h.xs.path,
        "XENSCRIPTS_LOG_FILE": h.log_file,
        "XENSCRIPTS_LOCK_DIR": h.lock_dir,
        "XENSCRIPTS_STATE_DIR": os.path.join(h.workdir, "run"),
        "XENSCRIPTS_SOCKET": os.environ.get("XENSCRIPTS_SOCKET", f"{h.workdir}/no-hotplugd.sock"),
    }
    assert seen["stdin_is_devnull"] is True
    assert seen["netns"] == _dom0_netns_inode(h)


def test_run_hotplug_tap_list_argv0_and_extras(simhost, dumper):
    h = simhost
    h.add_guest(2, 1, nic_type="ioemu", gatewaydev="eth0", vifname="v2")
    cp = h.run_hotplug(["/usr/bin/python3", "-IS", dumper], 2, 1, "remove", type_if="tap",
                       extra_args=("bridge=xenbr1",), extra_env={"FOO": "bar"})
    assert cp.returncode == 0, cp.stderr
    seen = json.loads(cp.stdout)
    assert seen["argv"] == [dumper, "remove", "type_if=tap", "bridge=xenbr1"]
    env = seen["env"]
    assert env["INTERFACE"] == "vif2.1-emu"
    assert env["vif"] == "vif2.1"               # always the default name, even with vifname
    assert env["netdev"] == "eth0"               # backend gatewaydev
    assert env["XENBUS_PATH"] == "backend/vif/2/1"
    assert env["script"] == dumper and env["FOO"] == "bar"


def test_run_hotplug_kills_on_timeout(simhost, tmp_path):
    p = tmp_path / "hang"
    p.write_text("#!/bin/sh\nsleep 30\n")
    p.chmod(0o755)
    simhost.add_guest(1)
    t0 = time.monotonic()
    cp = simhost.run_hotplug(str(p), 1, timeout=1)
    assert cp.returncode == -9 and time.monotonic() - t0 < 10


# ----------------------------------------------------------------- teardown
def test_close_removes_every_namespace(xenstored, require_root):
    h = SimHost(xenstored)
    h.add_bridge()
    h.add_guest(1)
    h.add_guest(2, nic_type="ioemu")
    h.add_guest(2, 1)
    names = set(list_sim_namespaces(h.prefix))
    assert names == {h.lan, h.dom0, h.prefix + "g1", h.prefix + "g2"}
    assert os.path.isdir(h.lock_dir)
    h.close()
    assert list_sim_namespaces(h.prefix) == []
    assert not os.path.exists(h.workdir)
    h.close()                                    # idempotent


def test_hosts_are_isolated(xenstored, require_root):
    with SimHost(xenstored) as a, SimHost(xenstored) as b:
        assert a.prefix != b.prefix
        a.add_bridge()
        b.add_bridge()
        ga, gb = a.add_guest(1), b.add_guest(1)  # same domid, different hosts
        assert ga.ns != gb.ns
    assert list_sim_namespaces(a.prefix) == [] and list_sim_namespaces(b.prefix) == []


# ----------------------------------------------------------------- upstream
@pytest.mark.skipif(not os.access(UPSTREAM_VIF_BRIDGE, os.X_OK),
                    reason="Debian's xen-utils-common scripts are not installed")
def test_upstream_vif_bridge_online_offline(simhost):
    h = simhost
    g = h.add_guest(1)

    t0 = time.monotonic()
    cp = h.run_hotplug(UPSTREAM_VIF_BRIDGE, 1, command="online")
    t_online = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr
    vif = h.link(g.vif)
    assert vif.get("master") == "xenbr0"
    assert "UP" in vif["flags"]
    assert vif["address"] == "fe:ff:ff:ff:ff:ff"
    assert h.xs.read(g.backend + "/hotplug-status") == "connected"
    assert _xenstore_read(h.xs, g.xenbus_path + "/hotplug-status") == "connected"
    assert (g.backend + "/hotplug-status", "connected") in h.xs.writes
    assert h.ping(g.ns, h.router_ip)

    t0 = time.monotonic()
    cp = h.run_hotplug(UPSTREAM_VIF_BRIDGE, 1, command="offline")
    t_offline = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr
    vif = h.link(g.vif)
    assert "master" not in vif and "UP" not in vif["flags"]
    assert {p["ifname"] for p in h.bridge_ports()} == {"eth0"}
    assert not h.ping(g.ns, h.router_ip, timeout=1)
    print(f"upstream vif-bridge: online {t_online * 1000:.0f} ms, "
          f"offline {t_offline * 1000:.0f} ms")


@pytest.mark.skipif(not os.access(UPSTREAM_VIF_BRIDGE, os.X_OK),
                    reason="Debian's xen-utils-common scripts are not installed")
def test_upstream_vif_bridge_tap_add(simhost):
    h = simhost
    g = h.add_guest(2, nic_type="ioemu")
    cp = h.run_hotplug(UPSTREAM_VIF_BRIDGE, 2, command="add", type_if="tap")
    assert cp.returncode == 0, cp.stderr
    assert h.master_of(g.emu) == "xenbr0"
    assert h.master_of(g.vif) is None                # the tap run touches only -emu
    assert h.xs.read(g.backend + "/hotplug-status") == ""   # no success() for tap
    cp = h.run_hotplug(UPSTREAM_VIF_BRIDGE, 2, command="remove", type_if="tap")
    assert cp.returncode == 0, cp.stderr
    assert h.master_of(g.emu) is None
