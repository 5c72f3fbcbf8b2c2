"""The Debian package under a real systemd: a throwaway container booted from this machine's own root.

``systemd-nspawn --volatile=yes -D /`` gives the container the host's /usr and
a tmpfs for everything else; /etc and /var are overlays of the host's with a
temporary upper layer (so the dpkg database and machine-id are there and the
first-boot wizard does not run), the network is private. Nothing the tests do
reaches the host. One boot for the whole module; the package is installed
inside, exercised with a simulated Xen host (``driver.py``), upgraded, removed and
purged; then a wheel is pip-installed and ``xenscripts install`` run from its venv,
served, and ``xenscripts uninstall`` takes it back. The container has no network
(``--private-network``) and its compilers are removed before the package goes in.
The container is no Xen dom0: a drop-in lifts the service's
``ConditionPathExists=/proc/xen/capabilities``, nothing else of the units changes;
a ``policy-rc.d`` of this machine's image (it forbids starting services) is
removed inside first.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from xenscripts.core.log import EVENTS

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
PY = str(REPO / ".venv" / "bin" / "python")
DRIVER = str(Path(__file__).with_name("driver.py"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 90
DROP_IN = "/run/systemd/system/xenscripts-hotplugd.service.d/10-not-a-dom0.conf"
HOOK = "/etc/xen/scripts/vif-post.d/10-test.hook"
METRICS = "/var/lib/prometheus/node-exporter/xenscripts.prom"  # Debian's textfile directory: the unit may write it
COMPILERS = "/usr/bin/gcc* /usr/bin/cc /usr/bin/c89* /usr/bin/c99* /usr/bin/cpp* /usr/bin/x86_64-linux-gnu-*"
WHEEL_VENV = "/opt/xs-wheel"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not installed (Debian package systemd-container)"
    if not glob.glob(str(DIST / "xenscripts_*.deb")):
        return "no dist/xenscripts_*.deb: run 'make deb' (make check builds it)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


class Container:
    """A booted container; ``run`` executes in all its namespaces with a clean environment."""

    def __init__(self, proc: subprocess.Popen, leader: int, log: Path) -> None:
        self.proc, self.leader, self.log = proc, leader, log

    def run(self, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cp = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8",
                             *cmd], capture_output=True, text=True, timeout=timeout, check=False)
        if check and cp.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp

    def driver(self, *args: str) -> dict:
        return json.loads(self.run(PY, DRIVER, *args, timeout=300).stdout)


def _leader(nspawn: int) -> int | None:
    """The container's init: the child of systemd-nspawn."""
    cp = subprocess.run(["pgrep", "-P", str(nspawn)], capture_output=True, text=True, check=False)
    children = cp.stdout.split()
    return int(children[0]) if children else None


def _repack(deb: str, out: Path, suffix: str, change: str = "") -> None:
    """*deb* one version up (``+suffix``) as *out*; with *change*, that file gets a line more (a new upstream)."""
    tree = out.with_suffix(".tree")
    subprocess.run(["dpkg-deb", "-R", deb, str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    version = next(line.split()[1] for line in control.read_text().splitlines() if line.startswith("Version:"))
    control.write_text(control.read_text().replace(f"Version: {version}", f"Version: {version}+{suffix}"))
    if change:
        with open(tree / change.lstrip("/"), "a", encoding="utf-8") as f:
            f.write("# a newer upstream version (test)\n")
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(tree), str(out)], check=True, capture_output=True)
    shutil.rmtree(tree)


def _xen_utils_common(outdir: Path) -> str | None:
    """xen-utils-common's .deb as apt fetched it (make deps), else fetched now; None when neither works."""
    cached = glob.glob("/var/cache/apt/archives/xen-utils-common_*.deb")
    if cached:
        return max(cached, key=os.path.getmtime)
    subprocess.run(["apt-get", "download", "-q", "xen-utils-common"], cwd=outdir, capture_output=True, check=False,
                   timeout=300)
    fetched = glob.glob(str(outdir / "xen-utils-common_*.deb"))
    return fetched[0] if fetched else None


def _upgrade_and_wheel(outdir: Path) -> None:
    """In *outdir*: the newest .deb repacked one version up (a real upgrade), xen-utils-common likewise with a
    changed vif-bridge (its upgrade under our diversions), and a wheel of this tree."""
    _repack(max(glob.glob(str(DIST / "xenscripts_*.deb")), key=os.path.getmtime), outdir / "upgrade.deb", "upgrade1")
    xen = _xen_utils_common(outdir)
    if xen:
        _repack(xen, outdir / "xen-utils-common.deb", "xstest1", "/etc/xen/scripts/vif-bridge")
    subprocess.run([PY, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(outdir), "."], cwd=REPO,
                   check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    log = tmp_path_factory.mktemp("nspawn") / "console.log"
    extra = tmp_path_factory.mktemp("artefacts")
    _upgrade_and_wheel(extra)
    name = f"xs-test-{os.getpid()}"
    argv = ["systemd-nspawn", "--quiet", "--keep-unit", "--register=no", "--volatile=yes", "--directory=/",
            "--overlay=/etc::/etc", "--overlay=/var::/var", "--overlay=/usr::/usr", "--private-network", f"--machine={name}",
            f"--bind-ro={REPO}", f"--bind-ro={extra}", "--console=pipe", "--boot"]
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    box = None
    try:
        while time.monotonic() - started < BOOT_TIMEOUT:
            if proc.poll() is not None:
                pytest.skip(f"this machine cannot boot a systemd container: {log.read_text()[-500:]}")
            leader = _leader(proc.pid)
            if leader is not None:
                box = Container(proc, leader, log)
                state = box.run("systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT)
                if state.stdout.strip() in ("running", "degraded"):
                    break
            time.sleep(0.2)
        else:  # nothing of ours is in it yet: a machine that cannot boot one
            pytest.skip(f"this machine did not boot a systemd container within {BOOT_TIMEOUT} s: "
                        f"{log.read_text()[-500:]}")
        box.boot_seconds = time.monotonic() - started
        box.artefacts = extra
        yield box
    finally:
        proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _sha(box: Container, path: str) -> str:
    return box.run("sha256sum", path).stdout.split()[0]


UPSTREAM = ("vif-bridge", "vif-route", "vif-nat", "vif-setup", "network-bridge", "network-route", "network-nat",
            "vif-openvswitch")


@pytest.fixture(scope="module")
def installed(container):
    box = container
    before = {n: _sha(box, f"/etc/xen/scripts/{n}") for n in UPSTREAM if os.path.exists(f"/etc/xen/scripts/{n}")}
    assert before, "xen-utils-common's scripts are needed (make check installs them)"
    deb = max(glob.glob(str(DIST / "xenscripts_*.deb")), key=os.path.getmtime)
    # A build machine's image may carry a policy-rc.d that forbids starting services (exit 101);
    # a Xen host has none. Removed in the container's /usr overlay only, as are the compilers:
    # the package must install on a host without any (and, --private-network, without a network).
    box.run("rm", "-f", "/usr/sbin/policy-rc.d")
    box.run("sh", "-c", f"rm -f {COMPILERS}")
    box.compilers = box.run("sh", "-c", "command -v gcc cc c99 x86_64-linux-gnu-gcc-12", check=False).stdout
    box.links = box.run("ip", "-o", "link", "show").stdout
    box.routes = box.run("ip", "route", "show").stdout
    # hotplugd's metrics, from the config file, into the directory its hardened unit may write
    box.run("mkdir", "-p", os.path.dirname(METRICS))
    box.run("sh", "-c", f"printf 'metrics_file={METRICS}   # node_exporter\\n' > /etc/xen/xenscripts.conf")
    box.run("dpkg", "-i", deb, timeout=300)
    box.run("mkdir", "-p", os.path.dirname(DROP_IN), os.path.dirname(HOOK))
    box.run("sh", "-c", f"printf '[Unit]\\nConditionPathExists=\\n' > {DROP_IN} && systemctl daemon-reload")
    box.run("sh", "-c", f"printf '#!/bin/sh\\necho \"$command $vif $bridge\" >> /run/xs-test/hook.out\\n' > {HOOK}"
            f" && chmod 755 {HOOK}")
    box.upstream, box.deb = before, deb
    return box


def test_install_diverts_upstreams_scripts_and_leaves_the_socket_listening(installed):
    box = installed
    assert box.compilers == "", box.compilers  # installed with no compiler
    assert [line.split(":")[1].strip() for line in box.links.splitlines()] == ["lo"] and box.routes == ""  # nor network
    assert box.run("systemctl", "is-active", "xenscripts-hotplugd.socket", check=False).stdout.strip() == "active"
    assert box.run("systemctl", "is-enabled", "xenscripts-hotplugd.socket", check=False).stdout.strip() == "enabled"
    assert box.run("systemctl", "is-active", "xenscripts-hotplugd.service", check=False).stdout.strip() == "inactive"
    listening = box.run("ss", "-xlnH").stdout
    assert "/run/xenscripts/hotplugd.sock" in listening
    diversions = box.run("dpkg-divert", "--list", "xenscripts").stdout
    for name, sha in box.upstream.items():
        assert f"/etc/xen/scripts/{name} to /etc/xen/scripts/{name}.upstream by xenscripts" in diversions
        assert _sha(box, f"/etc/xen/scripts/{name}.upstream") == sha
        assert "xenscripts entry point" in box.run("head", "-3", f"/etc/xen/scripts/{name}").stdout


def test_the_first_online_socket_activates_hotplugd_which_does_all_the_work_hardened(installed):
    box = installed
    seen = box.driver("online")
    assert seen["before"] == "inactive" and seen["rc"] == [0], seen
    assert seen["status"] == {"1": "connected"} and seen["master"] == {"1": "xenbr0"}, seen
    assert seen["in_ruleset"] == {"1": True}, seen  # nft and iptables-nft from inside the sandbox
    assert seen["hook"][0] == "online vif1.0 xenbr0" and seen["hook"][1].startswith("offline vif1.0"), seen
    assert seen["service"] == "active" and seen["offline_rc"] == [0]
    assert seen["in_iptables"] == {"1": True}, seen
    journal = box.run("journalctl", "-u", "xenscripts-hotplugd.service", "--no-pager", "-o", "cat").stdout
    assert any("hotplugd: ran" in line and " online " in line and "vif=vif1.0" in line
               for line in journal.splitlines()), journal


def test_the_admin_command_sees_the_packaged_install_and_gates_on_check_json(installed):
    box = installed
    for _ in range(50):  # hotplugd rewrites the file at most once a second
        status = json.loads(box.run("xenscripts", "status", "--json", check=False).stdout)
        counts = status["hotplugd"]["metrics"]
        if counts["requests"].get("vif-bridge", {}).get("served", 0) >= 2:
            break
        time.sleep(0.2)
    assert counts["file"] == METRICS and counts["requests"]["vif-bridge"]["served"] >= 2, counts  # written by the unit
    assert {s["name"]: s["owner"] for s in status["scripts"]} == {n: "ours" for n in (*UPSTREAM, "network")}
    cp = box.run("xenscripts", "check", "--json", check=False)
    doc = json.loads(cp.stdout)
    assert (doc["format"], doc["found"], doc["fixed"]) == (1, None, None) and cp.returncode == (1 if doc["drifts"] else 0)
    assert not [d for d in doc["drifts"] if d["kind"] in ("dpkg-new", "venv-python")], doc  # the install itself is sound
    refused = box.run("xenscripts", "uninstall", check=False)
    assert refused.returncode == 1 and "apt remove xenscripts" in refused.stderr  # apt owns this one


def test_the_hardened_service_starts_dnsmasq_for_nat_guests(installed):
    """network-nat dhcp=yes through hotplugd: dnsmasq runs in the service's cgroup and leases the guest its address."""
    seen = installed.driver("nat")
    assert (seen["start"], seen["online"], seen["offline"], seen["stop"]) == (0, 0, 0, 0), seen
    assert seen["lease"] and seen["lease"]["ip"] == "10.0.1.1" and seen["lease"]["router"] == "10.0.1.128", seen
    assert "xenscripts-hotplugd.service" in seen["dnsmasq_cgroup"], seen  # started by the sandboxed daemon


def test_journald_gets_structured_fields_and_a_message_id_per_event(installed):
    box = installed
    failed = box.driver("fail")
    assert failed["rc"] == [1] and failed["error"]["1"].startswith("Could not find bridge device nosuchbr"), failed
    cp = box.run("journalctl", "-o", "json", "--no-pager", f"MESSAGE_ID={EVENTS['failure']}", "VIF=vif1.0")
    errors = [json.loads(line) for line in cp.stdout.splitlines()]
    assert errors and errors[-1]["DOMID"] == "1" and "nosuchbr" in errors[-1]["MESSAGE"], errors
    cp = box.run("journalctl", "-o", "json", "--no-pager", f"MESSAGE_ID={EVENTS['success']}", "VIF=vif1.0")
    entries = [json.loads(line) for line in cp.stdout.splitlines()]
    assert entries, "no success event of vif1.0 in the journal"
    e = entries[0]
    assert (e["DOMID"], e["DEVID"], e["XENSCRIPTS_COMMAND"], e["SYSLOG_IDENTIFIER"]) == \
        ("1", "0", "vif-bridge", "xenscripts"), e
    assert e["_SYSTEMD_UNIT"] == "xenscripts-hotplugd.service"  # served by the daemon, logged from it
    assert {json.loads(line)["XENSCRIPTS_ACTION"] for line in box.run(
        "journalctl", "-o", "json", "--no-pager", "VIF=vif1.0", "XENSCRIPTS_COMMAND=vif-bridge").stdout.splitlines()} \
        >= {"online", "offline"}


@pytest.mark.parametrize("how", ["systemctl restart", "package upgrade"])
def test_a_restart_during_a_burst_loses_no_request(installed, how):
    """The service restarted (or the package upgraded over it: try-restart) while 12 onlines are in flight."""
    box = installed
    upgrade = str(box.artefacts / "upgrade.deb")
    seen = box.driver("burst", "12", *([upgrade] if how == "package upgrade" else []))
    assert seen["restart"] == 0 and seen["pid_before"] not in ("0", seen["main_pid"]), seen  # a new daemon
    assert seen["rc"] == [0] * 12, seen
    assert set(seen["status"].values()) == {"connected"} and set(seen["master"].values()) == {"xenbr0"}, seen
    assert all(seen["in_ruleset"].values()), seen
    assert seen["offline_rc"] == [0] * 12, seen
    if how == "package upgrade":
        assert box.run("dpkg-query", "-W", "-f=${Version}", "xenscripts").stdout.endswith("+upgrade1")


def test_a_xen_utils_common_upgrade_goes_to_upstream_s_name_without_a_prompt(installed):
    """Upstream's scripts are xen-utils-common's conffiles: diverted, a new one lands at <name>.upstream."""
    box = installed
    xen = box.artefacts / "xen-utils-common.deb"
    if not xen.exists():
        pytest.skip("no xen-utils-common .deb in apt's cache, and apt-get download failed")
    ours = box.run("readlink", "/etc/xen/scripts/vif-bridge").stdout
    # its postinst would start Xen's services, which a container without Xen cannot: forbidden for this step
    box.run("sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d")
    try:
        cp = box.run("dpkg", "-i", str(xen), check=False, timeout=300)  # stdin /dev/null: a prompt would fail it
    finally:
        box.run("rm", "-f", "/usr/sbin/policy-rc.d")
    assert cp.returncode == 0 and "Configuration file" not in cp.stdout, cp.stdout + cp.stderr
    assert box.run("readlink", "/etc/xen/scripts/vif-bridge").stdout == ours  # ours keeps the name
    newer = box.run("tail", "-1", "/etc/xen/scripts/vif-bridge.upstream").stdout
    assert newer == "# a newer upstream version (test)\n", newer
    box.run("test", "!", "-e", "/etc/xen/scripts/vif-bridge.dpkg-new")
    box.upstream["vif-bridge"] = _sha(box, "/etc/xen/scripts/vif-bridge.upstream")  # what remove must put back


def test_udev_runs_vif_setup_for_a_tap_and_for_nothing_else(installed):
    """``udevadm test`` on real links of the container's own network: the rules parse and match as meant.

    systemd 252 has no ``udevadm verify``; the xen-backend ``online``/``offline`` rules need
    netback's xen-backend devices, which no machine without Xen has, so only their parsing is checked.
    """
    box = installed
    box.run("ip", "link", "add", "vif9.0-emu", "type", "veth", "peer", "name", "xstest0")
    try:
        tap = box.run("udevadm", "test", "--action=add", "/sys/class/net/vif9.0-emu").stdout
        other = box.run("udevadm", "test", "--action=add", "/sys/class/net/xstest0").stdout
        removed = box.run("udevadm", "test", "--action=remove", "/sys/class/net/vif9.0-emu").stdout
    finally:
        box.run("ip", "link", "del", "vif9.0-emu", check=False)
    assert "run: '/etc/xen/scripts/vif-setup add type_if=tap'" in tap, tap
    assert "vif-setup" not in other and "vif-setup" not in removed  # the control, and add only as upstream
    rules = box.run("sh", "-c", "udevadm test --action=add /sys/class/net/lo 2>&1").stdout
    assert "80-xenscripts-network.rules" in rules
    assert not [line for line in rules.splitlines() if "80-xenscripts-network.rules" in line and
                ("invalid" in line.lower() or "error" in line.lower())], rules


def test_systemd_analyze_security_rates_the_running_service(installed):
    cp = installed.run("systemd-analyze", "security", "--no-pager", "xenscripts-hotplugd.service", check=False)
    score = float(cp.stdout.rsplit("exposure level for xenscripts-hotplugd.service:", 1)[1].split()[0])
    print(f"systemd-analyze security (running unit): {score}")
    assert score < 5, cp.stdout


def test_apt_remove_puts_upstream_back_and_purge_leaves_nothing(installed):
    box = installed
    box.run("apt-get", "remove", "-y", "-q", "xenscripts", timeout=300)
    for unit in ("xenscripts-hotplugd.socket", "xenscripts-hotplugd.service"):
        assert box.run("systemctl", "is-active", unit, check=False).stdout.strip() == "inactive"
    assert "xenscripts" not in box.run("systemctl", "list-unit-files", "--no-pager").stdout
    assert "/run/xenscripts/hotplugd.sock" not in box.run("ss", "-xlnH").stdout
    assert box.run("dpkg-divert", "--list", "xenscripts").stdout == ""
    for name, sha in box.upstream.items():
        assert _sha(box, f"/etc/xen/scripts/{name}") == sha  # byte for byte
        assert box.run("test", "-e", f"/etc/xen/scripts/{name}.upstream", check=False).returncode == 1
    assert box.run("test", "-e", "/usr/lib/xenscripts", check=False).returncode == 1
    box.run("apt-get", "purge", "-y", "-q", "xenscripts", timeout=300)
    status = box.run("dpkg-query", "-W", "-f=${db:Status-Status}", "xenscripts", check=False)
    assert status.returncode != 0 or status.stdout == "not-installed", status.stdout
    left = box.run("sh", "-c", f"ls -d /etc/xen/xenscripts* /run/xenscripts /usr/lib/xenscripts {METRICS} "
                   "/lib/systemd/system/xenscripts* /etc/systemd/system/*/xenscripts* /usr/sbin/xenscripts "
                   "/etc/init.d/xenscripts* /etc/logrotate.d/xenscripts /lib/udev/rules.d/*xenscripts* "
                   "/usr/share/doc/xenscripts /usr/share/man/man8/xenscripts* 2>/dev/null", check=False)
    assert left.stdout == "", left.stdout


def test_a_wheel_then_xenscripts_install_serves_and_uninstall_takes_it_back(installed):
    """After the package is purged: pip install of the wheel into a venv, then that venv's xenscripts install.

    The container has no network: the venv gets pyroute2 and python-iptables from this checkout's .venv
    (a .pth), the wheel itself from the artefacts directory.
    """
    box = installed
    box.run("dpkg", "--purge", "xenscripts", timeout=300)  # done by the test above when run in order
    wheel = next(box.artefacts.glob("xenscripts-*.whl"))
    box.run("/usr/bin/python3", "-m", "venv", WHEEL_VENV, timeout=300)  # pip from ensurepip: no network
    box.run(f"{WHEEL_VENV}/bin/pip", "install", "-q", "--no-deps", "--no-index", str(wheel), timeout=300)
    site = box.run(f"{WHEEL_VENV}/bin/python3", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    deps = next((REPO / ".venv" / "lib").glob("python3.*/site-packages"))
    box.run("sh", "-c", f"echo {deps} > {site.strip()}/xs-test-deps.pth")
    cp = box.run(f"{WHEEL_VENV}/bin/xenscripts", "install")
    assert "xenscripts: installed into /etc/xen/scripts" in cp.stdout, cp.stdout
    assert box.run("systemctl", "is-active", "xenscripts-hotplugd.socket", check=False).stdout.strip() == "active"
    seen = box.driver("online")
    assert seen["rc"] == [0] and seen["status"] == {"1": "connected"} and seen["service"] == "active", seen
    daemon = box.run("cat", f"/proc/{seen['main_pid']}/cmdline").stdout.replace("\0", " ")
    assert f"{WHEEL_VENV}/bin/xenscripts-hotplugd" in daemon, daemon  # the wheel's venv serves
    # pip's copy in the venv is now the installed entry file itself (the launcher on its #! line)
    box.run("cmp", f"{WHEEL_VENV}/bin/vif-bridge", "/etc/xen/scripts/vif-bridge")
    cp = box.run(f"{WHEEL_VENV}/bin/xenscripts", "uninstall")
    assert "xenscripts: uninstalled from /etc/xen/scripts" in cp.stdout, cp.stdout
    first = box.run("head", "-n1", f"{WHEEL_VENV}/bin/vif-bridge").stdout.strip()
    assert first.startswith("#!/usr/bin/python3"), first  # the launcher went with uninstall; Python starts it
    for name, sha in box.upstream.items():
        assert _sha(box, f"/etc/xen/scripts/{name}") == sha  # byte for byte
    left = box.run("sh", "-c", "ls -d /etc/xen/scripts/*.upstream /etc/systemd/system/xenscripts* "
                   "/usr/local/sbin/xenscripts /etc/udev/rules.d/80-xenscripts* 2>/dev/null", check=False)
    assert left.stdout == "", left.stdout
    assert box.run("systemctl", "is-active", "xenscripts-hotplugd.socket", check=False).stdout.strip() != "active"
