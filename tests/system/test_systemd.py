"""The Debian package under a real systemd: a throwaway container booted from this machine's own root.

``systemd-nspawn --volatile=yes -D /`` gives the container the host's /usr and
a tmpfs for everything else; /etc and /var are overlays of the host's with a
temporary upper layer (so the dpkg database and machine-id are there and the
first-boot wizard does not run), the network is private. Nothing the tests do
reaches the host. One boot for the whole module; the package is installed
inside, exercised with a simulated Xen host (``driver.py``), removed and purged.
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


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    log = tmp_path_factory.mktemp("nspawn") / "console.log"
    name = f"xs-test-{os.getpid()}"
    argv = ["systemd-nspawn", "--quiet", "--keep-unit", "--register=no", "--volatile=yes", "--directory=/",
            "--overlay=/etc::/etc", "--overlay=/var::/var", "--overlay=/usr::/usr", "--private-network", f"--machine={name}",
            f"--bind-ro={REPO}", "--console=pipe", "--boot"]
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
        else:
            pytest.fail(f"the container did not boot within {BOOT_TIMEOUT} s: {log.read_text()[-2000:]}")
        box.boot_seconds = time.monotonic() - started
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
    # a Xen host has none. Removed in the container's /usr overlay only.
    box.run("rm", "-f", "/usr/sbin/policy-rc.d")
    box.run("dpkg", "-i", deb, timeout=300)
    box.run("mkdir", "-p", os.path.dirname(DROP_IN), os.path.dirname(HOOK))
    box.run("sh", "-c", f"printf '[Unit]\\nConditionPathExists=\\n' > {DROP_IN} && systemctl daemon-reload")
    box.run("sh", "-c", f"printf '#!/bin/sh\\necho \"$command $vif $bridge\" >> /run/xs-test/hook.out\\n' > {HOOK}"
            f" && chmod 755 {HOOK}")
    box.upstream, box.deb = before, deb
    return box


def test_install_diverts_upstreams_scripts_and_leaves_the_socket_listening(installed):
    box = installed
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
    journal = box.run("journalctl", "-u", "xenscripts-hotplugd.service", "--no-pager", "-o", "cat").stdout
    assert any("hotplugd: ran" in line and " online " in line and "vif=vif1.0" in line
               for line in journal.splitlines()), journal


def test_the_hardened_service_starts_dnsmasq_for_nat_guests(installed):
    """network-nat dhcp=yes through hotplugd: dnsmasq runs in the service's cgroup and leases the guest its address."""
    seen = installed.driver("nat")
    assert (seen["start"], seen["online"], seen["offline"], seen["stop"]) == (0, 0, 0, 0), seen
    assert seen["lease"] and seen["lease"]["ip"] == "10.0.1.1" and seen["lease"]["router"] == "10.0.1.128", seen
    assert "xenscripts-hotplugd.service" in seen["dnsmasq_cgroup"], seen  # started by the sandboxed daemon


def test_journald_gets_structured_fields_and_a_message_id_per_event(installed):
    box = installed
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
    seen = box.driver("burst", "12", *([box.deb] if how == "package upgrade" else []))
    assert seen["restart"] == 0 and seen["pid_before"] not in ("0", seen["main_pid"]), seen  # a new daemon
    assert seen["rc"] == [0] * 12, seen
    assert set(seen["status"].values()) == {"connected"} and set(seen["master"].values()) == {"xenbr0"}, seen
    assert all(seen["in_ruleset"].values()), seen
    assert seen["offline_rc"] == [0] * 12, seen


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
    left = box.run("sh", "-c", "ls -d /etc/xen/xenscripts* /run/xenscripts /usr/lib/xenscripts "
                   "/lib/systemd/system/xenscripts* /etc/systemd/system/*/xenscripts* 2>/dev/null", check=False)
    assert left.stdout == "", left.stdout
