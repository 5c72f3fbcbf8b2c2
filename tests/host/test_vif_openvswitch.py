"""vif-openvswitch on a simulated Xen host with a real ovsdb-server + ovs-vswitchd (userspace datapath).

One host and one switch serve the whole module (tests/host/ovsbed.py resets
them between tests). Our script runs the installed way (SimHost.run_hotplug, libxl's argv and
environment plus ``OVS_RUNDIR``); results are read with ``ovs-vsctl``,
``ovs-ofctl``, ``ip -j`` and the simulated xenstored, never with our code.
Tests that gain nothing from the daemon pass carry ``once``: they run in the
in-process pass only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.host import ovsbed as bed
from tests.host.ovsbed import guest, hotplug, ok
from xensim.host import SimHost

DUMMY_MAC = "fe:ff:ff:ff:ff:ff"
DAEMON_MODE = os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon"
once = pytest.mark.skipif(DAEMON_MODE, reason="gains nothing from the daemon pass: runs in-process only")
ovsbed, simhost, ovs = bed.ovsbed, bed.simhost, bed.ovs  # the module's fixtures


def fatal(cp, host: SimHost, guest, message: str) -> str:
    assert cp.returncode == 1, f"exit {cp.returncode}\nstderr: {cp.stderr}"
    error = host.xs.read(f"{guest.backend}/hotplug-error")
    assert error is not None and message in error, error
    assert host.xs.read(f"{guest.backend}/hotplug-status") == "error"
    return error


def link(host: SimHost, name: str) -> dict:
    found = host.link(name)
    assert found is not None, f"{name} missing"
    return found


def test_online_puts_the_vif_on_the_ovs_bridge(simhost, ovs):
    g = guest(simhost)
    ok(hotplug(simhost, ovs, 1))
    assert ovs.bridge_of("vif1.0") == "ovsbr0"
    port, iface = ovs.port("vif1.0"), ovs.interface("vif1.0")
    assert port["tag"] == [] and port["trunks"] == [] and port["vlan_mode"] == []
    assert iface["external_ids"] == {"xen-vm-name": "guest1", "xen-vm-uuid": simhost.vm_uuid(1),
                                     "attached-mac": g.mac}
    vif = link(simhost, "vif1.0")
    assert vif["address"] == DUMMY_MAC and "UP" in vif["flags"]
    assert simhost.xs.read(f"{g.backend}/hotplug-status") == "connected"
    assert simhost.xs.read(f"{g.frontend}/mtu") == "1500"


def test_online_twice_changes_nothing(simhost, ovs):
    guest(simhost, bridge="ovsbr0.10:20:30")
    ok(hotplug(simhost, ovs, 1))
    first = (ovs.port("vif1.0"), ovs.interface("vif1.0"))
    ifindex = link(simhost, "vif1.0")["ifindex"]
    log = os.path.getsize(os.path.join(ovs.rundir, "ovs-vswitchd.log"))
    events = link_events(simhost, lambda: ok(hotplug(simhost, ovs, 1)))
    assert not [e for e in events if "vif1.0" in e], events  # no down/up, no MAC or MTU change
    assert (ovs.port("vif1.0"), ovs.interface("vif1.0")) == first  # same rows (_uuid), same ofport
    assert link(simhost, "vif1.0")["ifindex"] == ifindex
    with open(os.path.join(ovs.rundir, "ovs-vswitchd.log"), encoding="utf-8") as f:
        f.seek(log)
        assert "vif1.0" not in f.read()  # ovs-vswitchd did not re-add (or touch) the port


def link_events(host: SimHost, action) -> list[str]:
    """``ip monitor link`` lines in dom0 while *action* runs, between two marker bridges made for it."""
    p = subprocess.Popen(["ip", "-n", host.dom0, "-o", "monitor", "link"], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    try:
        deadline = time.monotonic() + 5
        while True:  # the start marker made and deleted until its line shows: the monitor listens
            host.ip(host.dom0, "link", "add", "xsmark0", "type", "bridge")
            host.ip(host.dom0, "link", "del", "xsmark0")
            if "xsmark0" in p.stdout.readline() or time.monotonic() > deadline:
                break
        action()
        host.ip(host.dom0, "link", "add", "xsmark1", "type", "bridge")
        lines = []
        for line in p.stdout:
            if "xsmark1" in line:
                break
            lines.append(line.strip())
        host.ip(host.dom0, "link", "del", "xsmark1")
        return [x for x in lines if "xsmark0" not in x]
    finally:
        p.kill()
        p.wait()


def test_bridge_string_tag_and_trunks(simhost, ovs):
    guest(simhost, 1, bridge="ovsbr0.10")
    guest(simhost, 2, bridge="ovsbr0:20:30")
    guest(simhost, 3, bridge="ovsbr0.10:20:30")
    for domid in (1, 2, 3):
        ok(hotplug(simhost, ovs, domid))
    assert (ovs.port("vif1.0")["tag"], ovs.port("vif1.0")["trunks"], ovs.port("vif1.0")["vlan_mode"]) == (10, [], [])
    assert (ovs.port("vif2.0")["tag"], ovs.port("vif2.0")["trunks"], ovs.port("vif2.0")["vlan_mode"]) \
        == ([], [20, 30], [])
    # a tag with trunks: upstream's ovs-vsctl leaves vlan_mode empty, an access port that ignores trunks
    assert (ovs.port("vif3.0")["tag"], ovs.port("vif3.0")["trunks"], ovs.port("vif3.0")["vlan_mode"]) \
        == (10, [20, 30], "native-untagged")


def test_vlan_key(simhost, ovs):
    guest(simhost, 1, extra_backend={"vlan": "10p/100+10x2"})
    ok(hotplug(simhost, ovs, 1))
    port = ovs.port("vif1.0")
    assert (port["tag"], port["trunks"], port["vlan_mode"]) == (10, [100, 110, 120], "native-untagged")


@pytest.mark.parametrize(("backend", "bridge", "message"), [
    ({}, "ovsbr0.x", "No valid bridge was specified"),
    ({}, "", "No valid bridge was specified"),
    ({"vlan": "10/20"}, "ovsbr0", "must be marked as the PVID"),
    ({"vlan": "7p/8u"}, "ovsbr0", "only the PVID untagged"),
    ({"vlan": "10"}, "ovsbr0.20", "set VLANs: use one"),
    ({}, "nosuchbr", "Open vSwitch has no bridge nosuchbr"),
])
def test_bad_input_configures_nothing(simhost, ovs, backend, bridge, message):
    g = guest(simhost, bridge=bridge, extra_backend=backend)
    before = link(simhost, "vif1.0")
    error = fatal(hotplug(simhost, ovs, 1), simhost, g, message)
    if "vlan" in backend and "PVID" in message:
        assert error.startswith(f"Invalid {g.xenbus_path}/vlan {backend['vlan']!r}")
    assert ovs.port("vif1.0") is None
    after = link(simhost, "vif1.0")
    assert (after["address"], after["flags"]) == (before["address"], before["flags"])


def test_no_ovsdb_is_a_clear_error_naming_the_socket(simhost, ovs):
    g = guest(simhost)
    before = link(simhost, "vif1.0")
    missing = os.path.join(simhost.workdir, "nowhere")
    cp = hotplug(simhost, ovs, 1, extra_env={"OVS_RUNDIR": missing})
    fatal(cp, simhost, g, f"Open vSwitch database not reachable at {missing}/db.sock")
    assert link(simhost, "vif1.0")["address"] == before["address"]
    # offline with no database is no error
    ok(hotplug(simhost, ovs, 1, "offline", extra_env={"OVS_RUNDIR": missing}))


def test_offline_removes_the_port_and_tolerates_it_gone(simhost, ovs):
    g = guest(simhost)
    ok(hotplug(simhost, ovs, 1))
    simhost.xs.write(f"{g.backend}/hotplug-status", "")
    ok(hotplug(simhost, ovs, 1, "offline"))
    assert ovs.port("vif1.0") is None and "vif1.0" not in ovs.ports("ovsbr0")
    assert "UP" not in link(simhost, "vif1.0")["flags"]
    assert simhost.xs.read(f"{g.backend}/hotplug-status") == ""  # success only on online
    ok(hotplug(simhost, ovs, 1, "offline"))  # again: nothing there
    simhost.remove_guest_link(1)
    ok(hotplug(simhost, ovs, 1, "offline"))  # the vif itself gone


def test_offline_tolerates_a_vanished_bridge(simhost, ovs):
    guest(simhost)
    ok(hotplug(simhost, ovs, 1))
    ovs.vsctl("--timeout=10", "del-br", "ovsbr0")
    cp = ok(hotplug(simhost, ovs, 1, "offline"))
    assert cp.stderr == ""
    assert "UP" not in link(simhost, "vif1.0")["flags"]


def test_offline_tolerates_a_vanished_ovsdb(simhost, ovs):
    guest(simhost)
    ok(hotplug(simhost, ovs, 1))
    ovs.stop()  # both daemons gone, the socket with them (the fixture starts a new switch)
    cp = ok(hotplug(simhost, ovs, 1, "offline"))
    assert cp.stderr == ""
    assert "UP" not in link(simhost, "vif1.0")["flags"]


def test_port_on_another_bridge_moves(simhost, ovs):
    ovs.add_bridge("ovsbr1")
    g = guest(simhost)
    ok(hotplug(simhost, ovs, 1))
    simhost.xs.write(f"{g.backend}/bridge", "ovsbr1.5")
    ok(hotplug(simhost, ovs, 1))
    assert ovs.bridge_of("vif1.0") == "ovsbr1" and ovs.port("vif1.0")["tag"] == 5
    assert "vif1.0" not in ovs.ports("ovsbr0")


def test_failure_after_the_port_is_added_rolls_it_back(simhost, ovs, tmp_path):
    g = guest(simhost)
    hooks = tmp_path / "vif-post.d"
    hooks.mkdir()
    (hooks / "10-fail.hook").write_text("exit 3\n")
    (hooks / "10-fail.hook").chmod(0o755)
    cp = hotplug(simhost, ovs, 1, extra_env={"XENSCRIPTS_SCRIPT_DIR": str(tmp_path)})
    assert cp.returncode == 1
    assert simhost.xs.read(f"{g.backend}/hotplug-status") == "error"
    assert ovs.port("vif1.0") is None
    assert "UP" not in link(simhost, "vif1.0")["flags"]


@once
def test_ovs_vswitchd_gone_fails_clearly_and_rolls_back(simhost, ovs):
    """The database takes the port but ovs-vswitchd never applies it: online fails naming it, and the port
    (already in the database) is removed again, the vif as it was; offline is no error."""
    g = guest(simhost)
    before = link(simhost, "vif1.0")
    os.kill(ovs.pids()["ovs-vswitchd"], signal.SIGKILL)
    try:
        fatal(hotplug(simhost, ovs, 1), simhost, g, "timed out waiting for ovs-vswitchd to apply the change "
                                                     "(is ovs-vswitchd running?)")
        assert ovs.port("vif1.0") is None
        after = link(simhost, "vif1.0")
        assert (after["address"], after["flags"], after["mtu"]) == (before["address"], before["flags"], before["mtu"])
        ok(hotplug(simhost, ovs, 1, "offline"))
    finally:
        ovs.restart()
        ovs.add_bridge("ovsbr0")


def test_mtu_from_xenstore_and_hooks_see_the_bridge(simhost, ovs, tmp_path):
    g = guest(simhost, mtu=1400)
    hooks = tmp_path / "vif-post.d"
    hooks.mkdir()
    out = tmp_path / "seen"
    (hooks / "10-log.hook").write_text(f'echo "$command $dev $bridge" >> {out}\n')
    (hooks / "10-log.hook").chmod(0o755)
    env = {"XENSCRIPTS_SCRIPT_DIR": str(tmp_path)}
    ok(hotplug(simhost, ovs, 1, extra_env=env))
    assert link(simhost, "vif1.0")["mtu"] == 1400
    assert simhost.xs.read(f"{g.frontend}/mtu") == "1400"
    ok(hotplug(simhost, ovs, 1, "offline", extra_env=env))
    assert out.read_text().splitlines() == ["online vif1.0 ovsbr0", "offline vif1.0 ovsbr0"]


def test_tap_add_and_remove(simhost, ovs):
    g = guest(simhost, nic_type="ioemu")
    ok(hotplug(simhost, ovs, 1, "add", type_if="tap"))
    assert ovs.bridge_of("vif1.0-emu") == "ovsbr0"
    assert simhost.xs.read(f"{g.backend}/hotplug-status") == ""
    ok(hotplug(simhost, ovs, 1, "remove", type_if="tap"))
    assert ovs.port("vif1.0-emu") is None


@once
def test_ovsdb_key_in_the_config_file(simhost, ovs, tmp_path):
    guest(simhost)
    conf = tmp_path / "xenscripts.core.conf"
    conf.write_text(f"ovsdb={ovs.db_sock}\n")
    env = {"XENSCRIPTS_CONF": str(conf), "OVS_RUNDIR": ""}
    ok(hotplug(simhost, ovs, 1, extra_env=env))
    assert ovs.bridge_of("vif1.0") == "ovsbr0"


def test_same_tag_reach_each_other_other_tags_do_not(simhost, ovs):
    for domid, bridge in ((1, "ovsbr0.10"), (2, "ovsbr0.10"), (3, "ovsbr0.20")):
        guest(simhost, domid, bridge=bridge)
        ok(hotplug(simhost, ovs, domid))
    g1, g3 = simhost.guests[(1, 0)], simhost.guests[(3, 0)]
    assert simhost.ping(g1.ns, simhost.guest_ip(2), count=1, timeout=6)  # -w: retried until a reply
    assert not simhost.ping(g1.ns, simhost.guest_ip(3), count=1, timeout=1)
    assert not simhost.ping(g3.ns, simhost.guest_ip(2), count=1, timeout=1)


def test_vlan_key_and_bridge_string_meet_on_the_same_vlan(simhost, ovs):
    """vlan=10 (libxl's key) and ovsbr0.10 (upstream's string) are the same VLAN; vlan=20 is another."""
    guest(simhost, 1, extra_backend={"vlan": "10"})
    guest(simhost, 2, bridge="ovsbr0.10")
    guest(simhost, 3, extra_backend={"vlan": "20"})
    for domid in (1, 2, 3):
        ok(hotplug(simhost, ovs, domid))
    g1 = simhost.guests[(1, 0)]
    assert simhost.ping(g1.ns, simhost.guest_ip(2), count=1, timeout=6)  # -w: retried until a reply
    assert not simhost.ping(g1.ns, simhost.guest_ip(3), count=1, timeout=1)


def test_trunk_port_sees_tagged_frames(simhost, ovs):
    """An access guest on VLAN 10 sends untagged; a trunk guest (10,20) receives it tagged 10."""
    guest(simhost, 1, bridge="ovsbr0.10")
    guest(simhost, 2, bridge="ovsbr0:10:20")
    for domid in (1, 2):
        ok(hotplug(simhost, ovs, domid))
    g1, g2 = simhost.guests[(1, 0)], simhost.guests[(2, 0)]
    seen = _capture(simhost, g2.ns, g2.guest_if, lambda: simhost.sh(
        g1.ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.1", check=False))
    tagged = [f for f in seen if f[12:14] == b"\x81\x00"]
    assert tagged, f"no 802.1Q frame reached the trunk port ({len(seen)} frames)"
    assert int.from_bytes(tagged[0][14:16], "big") & 0xFFF == 10
    assert tagged[0][6:12] == bytes.fromhex(g1.mac.replace(":", ""))


def test_tag_with_trunks_carries_the_tag_untagged_and_the_trunks_tagged(simhost, ovs):
    """bridge=ovsbr0.10:20 (native-untagged): VLAN 10 reaches the guest untagged (a ping to a VLAN-10 guest
    works), VLAN 20 tagged (a VLAN-20 guest's broadcasts arrive with tag 20)."""
    guest(simhost, 1, bridge="ovsbr0.10")
    guest(simhost, 2, bridge="ovsbr0.20")
    guest(simhost, 3, bridge="ovsbr0.10:20")
    for domid in (1, 2, 3):
        ok(hotplug(simhost, ovs, domid))
    g1, g2, g3 = simhost.guests[(1, 0)], simhost.guests[(2, 0)], simhost.guests[(3, 0)]
    assert simhost.ping(g1.ns, simhost.guest_ip(3), count=1, timeout=6)  # -w: retried until a reply
    seen = _capture(simhost, g3.ns, g3.guest_if, lambda: simhost.sh(
        g2.ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.1", check=False))
    from_g2 = [f for f in seen if f[6:12] == bytes.fromhex(g2.mac.replace(":", ""))]
    assert from_g2 and all(f[12:14] == b"\x81\x00" and int.from_bytes(f[14:16], "big") & 0xFFF == 20
                           for f in from_g2), [f[:18].hex() for f in from_g2]


def _capture(host: SimHost, ns: str, ifname: str, action) -> list[bytes]:
    """Frames arriving on *ifname* in *ns* (a packet socket, tags left in place) while *action* runs."""
    code = ("import socket,struct,sys,time\n"
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\n"
            "s.setsockopt(263,8,1)\n"  # SOL_PACKET, PACKET_AUXDATA: the tag the kernel took off
            f"s.bind(({ifname!r},0)); s.settimeout(0.2); sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
            "end=time.time()+3; out=[]\n"
            "while time.time()<end:\n"
            "  try:\n"
            "    data,anc,flags,addr=s.recvmsg(65535,1024)\n"
            "  except socket.timeout: continue\n"
            "  if addr[2]==socket.PACKET_OUTGOING: continue\n"
            "  for level,kind,aux in anc:\n"
            "    if level==263 and kind==8:\n"
            "      st,_l,_s,_m,_n,tci,tpid=struct.unpack('IIIHHHH',aux[:20])\n"
            "      if st&0x10: data=data[:12]+struct.pack('!HH',tpid or 0x8100,tci)+data[12:]\n"
            "  out.append(data.hex())\n"
            "print(' '.join(out))\n")
    p = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    action()
    out, _ = p.communicate(timeout=10)
    return [bytes.fromhex(h) for h in out.split()]


@once
def test_status_and_check_know_ovs_ports(simhost, ovs, tmp_path):
    from tests.host.test_admin import xenscripts

    guest(simhost, 1, bridge="ovsbr0.10")
    guest(simhost, 2, bridge="ovsbr0", extra_backend={"vlan": "20p/30"})
    for domid in (1, 2):
        ok(hotplug(simhost, ovs, domid))

    (tmp_path / "xenscripts.conf").write_text(f"ovsdb={ovs.db_sock}\n")  # admin_env's config file

    def admin(*args: str) -> subprocess.CompletedProcess:
        return xenscripts(simhost, tmp_path, *args)

    status = json.loads(admin("status", "--json").stdout)
    nics = {n["vif"]: n for n in status["nics"]}
    assert nics["vif1.0"]["ovs_port"]["tag"] == 10 and nics["vif1.0"]["bridge"] == "ovsbr0"
    assert nics["vif2.0"]["ovs_port"]["trunks"] == [30] and nics["vif2.0"]["ovs_port"]["vlan_mode"] == \
        "native-untagged"
    ovs_bridge = next(b for b in status["networks"]["bridges"] if b["name"] == "ovsbr0")
    assert ovs_bridge["ovs"] and ovs_bridge["vifs"] == ["vif1.0", "vif2.0"]
    assert "ovs ovsbr0 tag 10" in admin("status").stdout
    tree = admin("show", "--format", "text").stdout
    assert "ovsbr0 (Open vSwitch)" in tree and "├─ vif1.0 ── guest1" in tree and "└─ vif2.0 ── guest2" in tree, tree
    assert ") tag 10 [connected]" in tree and ") tag 20 trunks 30 native-untagged [connected]" in tree, tree
    assert 'label="port\\ntag 10"' in admin("show", "--format", "dot").stdout
    clean = json.loads(admin("check", "--json").stdout)
    assert not [d for d in clean["drifts"] if d["subject"] in ("vif1.0", "vif2.0", "vif3.0")], clean
    guest(simhost, 3, bridge="ovsbr0")
    ok(hotplug(simhost, ovs, 3))
    ovs.add_bridge("ovsbr1")
    ovs.vsctl("set", "port", "vif1.0", "tag=11")
    ovs.vsctl("--timeout=10", "del-port", "vif2.0")
    ovs.vsctl("--timeout=10", "del-port", "vif3.0", "--", "add-port", "ovsbr1", "vif3.0")
    drifts = {d["subject"]: d for d in json.loads(admin("check", "--json").stdout)["drifts"]}
    assert drifts["vif1.0"]["kind"] == "ovs-vlan" and "wants tag 10" in drifts["vif1.0"]["detail"]
    assert drifts["vif2.0"]["kind"] == "ovs-port-missing" and drifts["vif2.0"]["fix"] == "online"
    assert drifts["vif3.0"]["kind"] == "ovs-wrong-bridge" and "on ovsbr1, not ovsbr0" in drifts["vif3.0"]["detail"]
    fixed = admin("check", "--fix", "--json")
    assert not [d for d in json.loads(fixed.stdout)["drifts"] if d["subject"] in ("vif1.0", "vif2.0", "vif3.0")], \
        fixed.stdout
    assert (ovs.port("vif1.0")["tag"], ovs.bridge_of("vif2.0"), ovs.bridge_of("vif3.0")) == (10, "ovsbr0", "ovsbr0")


def test_a_restarted_ovsdb_is_reconnected(simhost, ovs):
    """hotplugd's warm connection notices a new ovsdb-server on the same socket (and so does a fresh run)."""
    guest(simhost, 1)
    guest(simhost, 2)
    ok(hotplug(simhost, ovs, 1))
    ovs.restart()  # same socket path, a new server with an empty database
    ovs.add_bridge("ovsbr0")
    ok(hotplug(simhost, ovs, 2))
    assert ovs.bridge_of("vif2.0") == "ovsbr0" and ovs.port("vif1.0") is None


def test_concurrent_onlines_of_one_vif_are_serialised(simhost, ovs, tmp_path):
    """Three onlines of one vif at once (libxl retrying, udev beside it): one after another, all succeed,
    one port, one row. A vif-post hook that takes a while marks each run's end: the marks never interleave."""
    from concurrent.futures import ThreadPoolExecutor

    guest(simhost, 1, bridge="ovsbr0.10")
    hooks, marks = tmp_path / "vif-post.d", tmp_path / "marks"
    hooks.mkdir()
    (hooks / "10-slow.hook").write_text(f'echo "in $$" >> {marks}; sleep 0.3; echo "out $$" >> {marks}\n')
    (hooks / "10-slow.hook").chmod(0o755)
    env = {"XENSCRIPTS_SCRIPT_DIR": str(tmp_path)}
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: hotplug(simhost, ovs, 1, extra_env=env), range(3)))
    for cp in results:
        ok(cp)
    lines = marks.read_text().split()
    assert lines[::2] == ["in", "out"] * 3, lines  # in, out, in, out, in, out
    assert lines[1::4] == lines[3::4], lines  # each run's own "out" follows its "in"
    rows = json.loads(ovs.vsctl("--format=json", "--columns=name", "find", "port", "name=vif1.0").stdout)["data"]
    assert len(rows) == 1 and ovs.port("vif1.0")["tag"] == 10
    assert "UP" in link(simhost, "vif1.0")["flags"]
