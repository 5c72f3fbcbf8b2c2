"""hotplugd: security, namespaces, and what happens when it dies or is stopped mid-request."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from xensim.hooks import marked_hook
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command
from xensim.poll import file_contains, wait_until

RAW_CLIENT = r"""
import os, sys, _socket
import time
deadline = repr(time.monotonic() + 10)
payload = "\0".join(["XS2", deadline, deadline, "vif-bridge", "3", "/etc/xen/scripts/vif-bridge", "online", "type_if=vif", "vif=vif1.0"]).encode()
s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
anc = []
if sys.argv[2] != "none":
    fd = os.open(sys.argv[2], os.O_RDONLY)
    anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))]
s.sendmsg([len(payload).to_bytes(4, "little") + payload], anc)
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply[4:5].decode() + " " + reply[5:].decode(errors="replace"))
"""


@pytest.fixture
def daemon(tmp_path):
    d = HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")).start()
    yield d
    d.stop()


def raw_request(daemon: HotplugDaemon, nsfile: str, user: str | None = None) -> str:
    """Send one hand-made request; return the reply's kind letter and text."""
    cmd = ["/usr/bin/python3", "-IS", "-c", RAW_CLIENT, daemon.socket, nsfile]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def test_socket_is_root_only(daemon):
    mode = stat.S_IMODE(os.stat(daemon.socket).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.socket)).st_mode) == 0o700


def test_non_root_peer_is_refused():
    # Open the path up so only the daemon's SO_PEERCRED check stands between nobody and it.
    top = tempfile.mkdtemp(prefix="xs-hpd-")
    try:
        os.chmod(top, 0o755)
        with HotplugDaemon(os.path.join(top, "run", "hotplugd.sock")) as daemon:
            os.chmod(os.path.dirname(daemon.socket), 0o755)
            os.chmod(daemon.socket, 0o666)
            reply = raw_request(daemon, "/proc/self/ns/net", user="65534")
            assert reply.startswith("R ") and "not root" in reply
            assert daemon.served() == 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("nsfile", ["none", "/dev/null"])
def test_request_without_a_usable_netns_is_refused(daemon, nsfile):
    reply = raw_request(daemon, nsfile)
    assert reply.startswith("R "), reply
    assert daemon.served() == 0


def test_work_is_done_in_the_callers_namespace(simhost, daemon):
    """The daemon lives in the root namespace; the vif exists only in dom0's."""
    g = simhost.add_guest(1)
    cp = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.socket})
    assert cp.returncode == 0, cp.stderr
    assert daemon.served() == 1
    assert simhost.master_of(g.vif) == "xenbr0"
    assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"


def _slow_hook(tmp_path: Path, seconds: float) -> tuple[str, Path]:
    """A script dir whose vif-post.d hook marks that it started, then sleeps."""
    return marked_hook(tmp_path, f"sleep {seconds}")


def _online_in_background(host, daemon, script_dir):
    result: dict = {}
    env = {"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SCRIPT_DIR": script_dir}

    def go():
        result["cp"] = host.run_hotplug(our_command("vif-bridge"), 1, extra_env=env)

    thread = threading.Thread(target=go)
    thread.start()
    return thread, result




def test_kill_9_mid_request_client_falls_back(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 1.5)
    thread, result = _online_in_background(simhost, daemon, script_dir)
    assert file_contains(marker), "the daemon never reached the hook"
    daemon.proc.send_signal(signal.SIGKILL)
    thread.join(30)
    cp = result["cp"]
    assert cp.returncode == 0, cp.stderr
    assert marker.read_text().count("started") == 2  # once in the daemon, once in the fallback
    assert simhost.master_of(g.vif) == "xenbr0"
    assert simhost.link(g.vif)["address"] == "fe:ff:ff:ff:ff:ff"
    assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"
    assert daemon.served() == 0


def test_sigterm_finishes_the_request_in_flight(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 1.0)
    thread, result = _online_in_background(simhost, daemon, script_dir)
    assert file_contains(marker)
    daemon.proc.send_signal(signal.SIGTERM)
    thread.join(30)
    assert result["cp"].returncode == 0
    assert daemon.proc.wait(15) == 0
    assert marker.read_text().count("started") == 1  # the daemon finished it: no fallback
    assert daemon.served() == 1
    assert simhost.master_of(g.vif) == "xenbr0"


def test_daemon_absent_means_in_process(simhost, tmp_path):
    g = simhost.add_guest(1)
    cp = simhost.run_hotplug(our_command("vif-bridge"), 1,
                             extra_env={"XENSCRIPTS_SOCKET": str(tmp_path / "nothing.sock")})
    assert cp.returncode == 0, cp.stderr
    assert simhost.master_of(g.vif) == "xenbr0"


ACTIVATOR = r"""
import os, socket, sys
path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(path)
os.chmod(path, 0o600)
sock.listen(16)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.executable, [sys.executable, "-m", "xenscripts.daemon.server", "--foreground", "--socket", "/nonexistent/x"])
"""


def test_socket_activation_uses_the_inherited_listener(simhost, tmp_path):
    """As systemd does it: the listening socket arrives as fd 3 with LISTEN_PID/LISTEN_FDS."""
    sock = str(tmp_path / "activated.sock")
    log = tmp_path / "activated.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", ACTIVATOR, sock], stdout=out, stderr=out,
                                cwd=Path(__file__).resolve().parents[2], pass_fds=())
    try:
        assert file_contains(log, "listening"), log.read_text()
        g = simhost.add_guest(1)
        cp = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env={"XENSCRIPTS_SOCKET": sock})
        assert cp.returncode == 0, cp.stderr
        assert "hotplugd: ran " in log.read_text()
        assert simhost.master_of(g.vif) == "xenbr0"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0



def test_a_daemon_that_never_answers_times_out_into_in_process(simhost, tmp_path):
    """A hung daemon: the client gives up after XENSCRIPTS_CLIENT_TIMEOUT and does the work itself."""
    import socket

    path = str(tmp_path / "hung.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    held: list = []
    stop = threading.Event()

    def accept_and_hang():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_hang)
    thread.start()
    try:
        g = simhost.add_guest(1)
        cp = simhost.run_hotplug(our_command("vif-bridge"), 1,
                                 extra_env={"XENSCRIPTS_SOCKET": path, "XENSCRIPTS_CLIENT_TIMEOUT": "1"})
        assert cp.returncode == 0, cp.stderr
        assert held, "the client never connected to the hung daemon"
        assert simhost.master_of(g.vif) == "xenbr0"
        assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_without_foreground_it_detaches_and_writes_a_pidfile(simhost, tmp_path):
    sock = str(tmp_path / "run" / "hotplugd.sock")
    pidfile = tmp_path / "hotplugd.pid"
    cp = subprocess.run([sys.executable, "-m", "xenscripts.daemon.server", "--socket", sock, "--pidfile", str(pidfile)],
                        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=30,
                        check=False)
    assert cp.returncode == 0, cp.stderr
    assert file_contains(pidfile, "\n")
    pid = int(pidfile.read_text())
    try:
        assert os.getsid(pid) != os.getsid(0)  # a session of its own: detached from ours
        g = simhost.add_guest(1)
        run = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env={"XENSCRIPTS_SOCKET": sock})
        assert run.returncode == 0, run.stderr
        assert simhost.master_of(g.vif) == "xenbr0"
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15), \
        "the detached daemon did not exit on SIGTERM"


# ---------------------------------------------------------------- exactly once, in order
def _online(host, daemon, script_dir: str, timeout: str, command: str = "online"):
    env = {"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SCRIPT_DIR": script_dir,
           "XENSCRIPTS_CLIENT_TIMEOUT": timeout}
    return host.run_hotplug(our_command("vif-bridge"), 1, command=command, extra_env=env)


def _logged(daemon: HotplugDaemon, text: str) -> bool:
    return file_contains(Path(daemon.log_path), text, timeout=15)


def _assert_not_connected_and_unplugged(host, g) -> None:
    link = host.link(g.vif)
    assert link.get("master") is None and "UP" not in link["flags"], link
    assert host.xs.read(g.backend + "/hotplug-status") != "connected"


def test_a_run_longer_than_the_client_timeout_runs_once(simhost, daemon, tmp_path):
    """Started in the daemon: the client never runs it too; it reports the timeout and the run is undone."""
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 2)
    cp = _online(simhost, daemon, script_dir, "1")
    assert cp.returncode == 1
    assert "timed out after 1 s waiting for hotplugd" in simhost.xs.read(g.backend + "/hotplug-error")
    assert _logged(daemon, "hotplugd: ran "), "the daemon's run never finished"
    assert marker.read_text().count("started") == 1
    _assert_not_connected_and_unplugged(simhost, g)  # its caller gave up: undone, never `connected`


@pytest.mark.parametrize("client", ["gone", "still running"])
def test_sigstop_before_start_then_cont_does_not_replay_a_stale_online(simhost, daemon, tmp_path, client):
    """The client ran it itself after start-by; the resumed daemon must not run it again."""
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 0 if client == "gone" else 1)
    log = Path(daemon.log_path)
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(cp=_online(simhost, daemon, script_dir, "3")))
        thread.start()
        if client == "still running":  # resume while the in-process fallback is in its hook
            assert file_contains(marker)
            daemon.proc.send_signal(signal.SIGCONT)
            assert file_contains(log, "hotplugd: dropped"), log.read_text()
        thread.join(30)
        assert result["cp"].returncode == 0, result["cp"].stderr
        assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"
        simhost.xs.rm(g.backend)  # the guest is destroyed
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert wait_until(lambda: any(w in log.read_text() for w in ("hotplugd: dropped", "hotplugd: refused",
                                                                "hotplugd: request failed")), timeout=15)
    assert simhost.xs.read(g.backend) is None, "the stale online re-created the backend"
    assert marker.read_text().count("started") == 1
    assert daemon.served() == 0


def test_sigstop_while_running_then_cont_reports_the_timeout_and_undoes(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 0.5)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(cp=_online(simhost, daemon, script_dir, "1.5")))
    thread.start()
    try:
        assert file_contains(marker), "the daemon never reached the hook"
        daemon.proc.send_signal(signal.SIGSTOP)
        thread.join(30)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert result["cp"].returncode == 1
    assert "timed out" in simhost.xs.read(g.backend + "/hotplug-error")
    assert _logged(daemon, "hotplugd: ran ")
    assert marker.read_text().count("started") == 1
    _assert_not_connected_and_unplugged(simhost, g)


def test_kill_9_before_the_call_runs_in_process(simhost, daemon):
    g = simhost.add_guest(1)
    daemon.proc.kill()
    daemon.proc.wait(10)
    cp = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.socket})
    assert cp.returncode == 0, cp.stderr
    assert simhost.master_of(g.vif) == "xenbr0"


def test_abandoned_online_then_offline_ends_down_and_not_connected(simhost, daemon, tmp_path):
    """libxl gave up on online and ran offline: offline waits for the online, which is undone."""
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 1.5)
    assert _online(simhost, daemon, script_dir, "1").returncode == 1
    cp = _online(simhost, daemon, script_dir, "10", command="offline")
    assert cp.returncode == 0, cp.stderr
    assert marker.read_text().count("started") == 2  # the online's hook once, the offline's once
    _assert_not_connected_and_unplugged(simhost, g)


def test_online_and_offline_together_serialise_on_both_paths(simhost):
    """The host-wide per-device lock: never a vif left up but off its bridge."""
    guests = [simhost.add_guest(d) for d in range(1, 7)]
    runs = []
    for g in guests:
        for command in ("online", "offline"):
            runs.append(threading.Thread(target=simhost.run_hotplug,
                                         args=(our_command("vif-bridge"), g.domid), kwargs={"command": command}))
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    for g in guests:
        link = simhost.link(g.vif)
        assert ("UP" in link["flags"]) == (link.get("master") == "xenbr0"), link


# ---------------------------------------------------------------- no privilege through the daemon
NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]


def test_a_root_peer_without_capabilities_is_refused_and_gets_nothing_done(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    script_dir, marker = _slow_hook(tmp_path, 0)
    cp = simhost.run_hotplug([*NO_CAPS, *our_command("vif-bridge")], 1,
                             extra_env={"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SCRIPT_DIR": script_dir})
    assert cp.returncode == 1  # refused, then in-process without the rights to do it
    assert _logged(daemon, "lacks capabilities")
    assert daemon.served() == 0
    assert simhost.master_of(g.vif) is None
    assert not marker.exists()


def test_outside_test_mode_a_request_cannot_steer_paths(simhost, tmp_path):
    """XENSCRIPTS_* in a request (log file, script dir) are ignored: the daemon's own settings rule."""
    g = simhost.add_guest(1)
    evil_dir, evil_marker = _slow_hook(tmp_path / "evil", 0)
    own_log = tmp_path / "own.log"
    own_env = {"XENSCRIPTS_LOG_FILE": str(own_log), "XENSCRIPTS_LOCK_DIR": simhost.lock_dir,
               "XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "none")}
    victim = tmp_path / "victim"
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock"), test_mode=False, env=own_env) as daemon:
        steer = {"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SCRIPT_DIR": evil_dir,
                 "XENSCRIPTS_LOG_FILE": str(victim)}
        cp = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env=steer)
        assert cp.returncode == 0, cp.stderr
        simhost.xs.rm(g.backend + "/bridge")  # so argv's bridge= counts
        failing = simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env=steer, extra_args=["bridge=nosuch"])
        assert failing.returncode == 1
        assert daemon.served() == 2
    assert simhost.master_of(g.vif) == "xenbr0"
    assert not evil_marker.exists() and not victim.exists()
    assert "Could not find bridge device nosuch" in own_log.read_text()


def test_vif_setup_never_runs_a_foreign_script_in_the_daemon(simhost, daemon, tmp_path):
    g = simhost.add_guest(1)
    script = tmp_path / "my-vif"
    script.write_text(f"#!/bin/sh\necho \"$$ $*\" > {tmp_path}/ran\n")
    script.chmod(0o755)
    cp = simhost.run_hotplug(our_command("vif-setup"), 1,
                             extra_env={"XENSCRIPTS_SOCKET": daemon.socket, "script": str(script)})
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "ran").read_text().split()[1:] == ["online", "type_if=vif"]
    assert daemon.served() == 0 and simhost.master_of(g.vif) is None
