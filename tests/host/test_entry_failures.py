"""Failures that must not change the outcome, and messages that say what went wrong."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xensim.hooks import marked_hook
from xensim.hotplugd import HotplugDaemon
from xensim.ours import REPO, our_command
from xensim.poll import file_contains, wait_until


def _online(host, **env: str) -> subprocess.CompletedProcess:
    return host.run_hotplug(our_command("vif-bridge"), 1, extra_env=env)


def _assert_rolled_back_with_error(host, g, *texts: str) -> str:
    link = host.link(g.vif)
    assert link.get("master") is None and "UP" not in link["flags"], link
    assert host.xs.read(g.backend + "/hotplug-status") == "error"
    error = host.xs.read(g.backend + "/hotplug-error")
    for text in texts:
        assert text in error, error
    return error


@pytest.mark.parametrize("knob", ["DROP", "STALL"])
def test_a_dropping_or_stalling_xenstore_rolls_back_and_reports(simhost, knob):
    g = simhost.add_guest(1)
    simhost.xs.fail(f"{g.frontend}/mtu", knob)
    cp = _online(simhost, XENSCRIPTS_CLIENT_TIMEOUT="4")
    assert cp.returncode == 1
    expected = "ECONNRESET" if knob == "DROP" else "ETIMEDOUT"
    _assert_rolled_back_with_error(simhost, g, f"{g.frontend}/mtu", expected)


def test_any_exception_in_the_body_rolls_back(simhost):
    """Not only HotplugError: e.g. a hook's subprocess.TimeoutExpired, here raised on cue."""
    g = simhost.add_guest(1)
    code = ("import subprocess, sys\n"
            "from xenscripts.commands import vif_bridge\n"
            "from xenscripts.frame import steps\n"
            "def hang(*a, **k):\n"
            "    raise subprocess.TimeoutExpired(['/bin/bash', '-c', '. \"$0\"', '/x/vif-post.d/9.hook'], 30)\n"
            "steps.call_hooks = hang\n"
            "sys.exit(vif_bridge.run(sys.argv[1:], dict(__import__('os').environ)))\n")
    env = simhost.env_for(1)
    cp = subprocess.run(["ip", "netns", "exec", simhost.dom0, sys.executable, "-c", code,
                         "/etc/xen/scripts/vif-bridge", "online", "type_if=vif"],
                        env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert cp.returncode == 1, cp.stderr
    _assert_rolled_back_with_error(simhost, g, "/x/vif-post.d/9.hook timed out after 30 s")


def test_an_error_over_xenstores_limit_is_truncated_and_written(simhost, tmp_path):
    g = simhost.add_guest(1)
    script_dir, _ = marked_hook(tmp_path, "head -c 6000 /dev/zero | tr '\\0' x >&2; exit 1")
    cp = _online(simhost, XENSCRIPTS_SCRIPT_DIR=script_dir)
    assert cp.returncode == 1
    error = _assert_rolled_back_with_error(simhost, g, "[truncated]")
    assert len(error) < 4096


def test_a_failing_online_after_the_backend_was_removed_does_not_recreate_it(simhost, tmp_path):
    g = simhost.add_guest(1)
    script_dir, marker = marked_hook(tmp_path, f"while [ -e {tmp_path}/hold ]; do sleep 0.05; done; exit 1")
    (tmp_path / "hold").touch()
    import threading

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(cp=_online(simhost, XENSCRIPTS_SCRIPT_DIR=script_dir)))
    thread.start()
    try:
        assert file_contains(marker)
        simhost.xs.rm(g.backend)
    finally:
        (tmp_path / "hold").unlink()
        thread.join(30)
    assert result["cp"].returncode == 1
    assert simhost.xs.read(g.backend) is None


def test_a_full_disk_under_the_log_file_does_not_change_the_result(simhost):
    g = simhost.add_guest(1)
    cp = _online(simhost, XENSCRIPTS_LOG_FILE="/dev/full")
    assert cp.returncode == 0, cp.stderr
    assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"


def test_a_bad_client_timeout_names_the_key_and_value(simhost):
    g = simhost.add_guest(1)
    cp = _online(simhost, XENSCRIPTS_CLIENT_TIMEOUT="20s")
    assert cp.returncode == 1 and "Traceback" not in cp.stderr
    assert "'20s'" in cp.stderr and "client_timeout" in cp.stderr
    assert "client_timeout" in simhost.xs.read(g.backend + "/hotplug-error")
    assert simhost.master_of(g.vif) is None


def test_a_blank_vif_setup_script_is_an_error_not_a_traceback(simhost):
    simhost.add_guest(1)
    cp = simhost.run_hotplug(our_command("vif-setup"), 1, extra_env={"script": "   "})
    assert cp.returncode == 1 and "Traceback" not in cp.stderr and "IndexError" not in cp.stderr
    assert "names no program" in cp.stderr


def test_cannot_connect_to_xenstore_names_where_it_looked(simhost, tmp_path):
    simhost.add_guest(1)
    cp = _online(simhost, XENSTORED_PATH=str(tmp_path / "no-xenstored"))
    assert cp.returncode == 1
    assert f"{tmp_path}/no-xenstored: ENOENT" in cp.stderr and "XENSTORED_PATH" in cp.stderr


# ---------------------------------------------------------------- the daemon itself
@pytest.fixture
def daemon(tmp_path):
    d = HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")).start()
    yield d
    d.stop()


def _netns_fds(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("net:")
        except OSError:
            pass
    return count


@pytest.mark.parametrize("payload", [b"\x40\x00\x00\x00XS2\0short", b"\x05\x00\x00\x00XS2\0x", b"\x03\x00\x00\x00XS1"])
def test_malformed_or_truncated_requests_do_not_pin_namespaces(daemon, payload):
    before = _netns_fds(daemon.proc.pid)
    for _ in range(10):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(daemon.socket)
            nsfd = os.open("/proc/self/ns/net", os.O_RDONLY)
            try:
                sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, nsfd.to_bytes(4, sys.byteorder))])
            finally:
                os.close(nsfd)
    assert wait_until(lambda: Path(daemon.log_path).read_text().count("request failed") >= 10, timeout=20)
    assert _netns_fds(daemon.proc.pid) == before


def _detached(tmp_path: Path, sock: str, pidfile: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xenscripts.daemon.server", "--socket", sock, "--pidfile", str(pidfile)],
                          cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, **env})


def test_one_instance_and_detached_logs_to_syslog(simhost, tmp_path):
    sock = str(tmp_path / "run" / "hotplugd.sock")
    pidfile = tmp_path / "hotplugd.pid"
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(tmp_path / "log"))
    syslog.settimeout(15)
    try:
        assert _detached(tmp_path, sock, pidfile, XENSCRIPTS_SYSLOG=str(tmp_path / "log")).returncode == 0
        assert file_contains(pidfile, "\n")
        pid = int(pidfile.read_text())
        try:
            assert b"listening on" in syslog.recv(4096)
            second = _detached(tmp_path, sock, tmp_path / "second.pid")
            assert second.returncode != 0 and "another instance" in second.stderr
            assert int(pidfile.read_text()) == pid and os.path.exists(sock)
            g = simhost.add_guest(1)
            assert _online(simhost, XENSCRIPTS_SOCKET=sock).returncode == 0
            assert any(b"hotplugd: ran " in syslog.recv(4096) for _ in range(50))
            assert simhost.master_of(g.vif) == "xenbr0"
        finally:
            os.kill(pid, 15)
        assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15)
    finally:
        syslog.close()


# ---------------------------------------------------------------- settings from the host's config file
def test_the_client_finds_the_daemon_through_the_config_file(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    conf = tmp_path / "xenscripts.conf"
    conf.write_text(f"socket={daemon.socket}\nclient_timeout=10\n")
    cp = _online(simhost, XENSCRIPTS_CONF=str(conf), XENSCRIPTS_SOCKET="")
    assert cp.returncode == 0, cp.stderr
    assert daemon.served() == 1 and simhost.master_of(g.vif) == "xenbr0"


def test_a_bad_config_value_names_key_and_value_in_client_and_daemon(simhost, tmp_path):
    g = simhost.add_guest(1)
    conf = tmp_path / "xenscripts.conf"
    conf.write_text("client_timeout=20s\n")
    cp = _online(simhost, XENSCRIPTS_CONF=str(conf))
    assert cp.returncode == 1 and "Traceback" not in cp.stderr
    assert "'20s'" in cp.stderr and "client_timeout" in cp.stderr
    assert "client_timeout" in simhost.xs.read(g.backend + "/hotplug-error")
    started = subprocess.run([sys.executable, "-m", "xenscripts.daemon.server", "--foreground"], cwd=REPO,
                             env={**os.environ, "XENSCRIPTS_CONF": str(conf)}, capture_output=True, text=True,
                             timeout=30, check=False)
    assert started.returncode != 0 and "Traceback" not in started.stderr
    assert "'20s'" in started.stderr and "client_timeout" in started.stderr
