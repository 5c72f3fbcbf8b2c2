"""xenscripts-launch (the compiled interpreter of the entry files) against the Python thin client, side by side.

A fake hotplugd on a unix socket records the request each client sends and
answers what a test tells it to; both clients must send the same request and
end the same way (served, BUSY, timed out, daemon died, bad setting). The
launcher serves a call hotplugd runs without starting Python at all.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from xenscripts.admin import launcher
from xenscripts.entry import wire
from xensim.ours import BIN, REPO, launched_bin

CLIENTS = ("python", "launch")


def entry(client: str, name: str = "vif-bridge") -> list[str]:
    return [str((launched_bin() if client == "launch" else BIN) / name)]


class FakeDaemon:
    """Accepts one connection at a time; records each request; answers with *script* (a list of steps)."""

    def __init__(self, path: str, script: list) -> None:
        self.path, self.script = path, script
        self.requests: list[tuple[str, list[str], dict[str, str], float, float]] = []
        self.fds: list[int] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 4)
            size = int.from_bytes(msg[:4], "little")
            while len(msg) < size + 4:
                msg += conn.recv(1 << 20)
            self.requests.append(wire.decode_request(msg[4:]))
            self.fds += fds
            for fd in fds:
                os.close(fd)
            for step in self.script:
                if step == "GO?":
                    assert conn.recv(1) == wire.GO
                elif step == "hang":
                    self.held.append(conn)
                    break
                else:
                    conn.sendall(wire.frame(step))
            else:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.listener.close()


@pytest.fixture
def fake(tmp_path):
    made: list[FakeDaemon] = []

    def start(script: list) -> FakeDaemon:
        made.append(FakeDaemon(str(tmp_path / f"fake{len(made)}.sock"), script))
        return made[-1]
    yield start
    for d in made:
        d.close()


SERVED = [wire.STARTED, "GO?", wire.STDERR + b"from the daemon\n", wire.STDOUT + b"a plan\n", wire.EXIT + b"3"]


def test_both_clients_send_the_same_request_and_relay_the_answer(simhost, fake):
    simhost.add_guest(1)
    seen = {}
    for client in CLIENTS:
        daemon = fake(SERVED)
        cp = simhost.run_hotplug(entry(client), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.path, "ODD": "a=b\x01c"})
        assert cp.returncode == 3, cp.stderr
        assert cp.stderr == "from the daemon\n" and cp.stdout == "a plan\n"
        (command, argv, env, start_by, deadline), = daemon.requests
        assert len(daemon.fds) == 1  # the caller's network namespace travels along
        assert 0 < start_by < deadline
        assert argv[0] == entry(client)[0] and env["script"] == argv[0]  # the path libxl ran
        seen[client] = (command, argv[1:], {k: v for k, v in env.items()
                                                 if k not in ("script", "XENSCRIPTS_SOCKET")})
    assert seen["launch"][:2] == seen["python"][:2]
    # the environment as libxl gave it; Python's client adds only its locale coercion (PEP 538)
    assert set(seen["launch"][2].items()) - set(seen["python"][2].items()) == set()
    assert set(seen["python"][2].items()) - set(seen["launch"][2].items()) <= {("LC_CTYPE", "C.UTF-8")}
    assert seen["launch"][0] == "vif-bridge" and seen["launch"][1] == ["online", "type_if=vif"]


@pytest.mark.parametrize("client", CLIENTS)
def test_busy_is_reported_and_not_run_in_process(simhost, fake, client):
    g = simhost.add_guest(1)
    daemon = fake([wire.BUSY + b"the queue is full (600 waiting)"])
    cp = simhost.run_hotplug(entry(client), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.path})
    assert cp.returncode == 1
    error = simhost.xs.read(g.backend + "/hotplug-error")
    assert "not run: the queue is full (600 waiting)" in error and "not run in-process either" in error
    assert simhost.master_of(g.vif) is None  # nothing was done


@pytest.mark.parametrize("client", CLIENTS)
def test_a_started_call_that_never_ends_is_reported_at_the_deadline(simhost, fake, client):
    g = simhost.add_guest(1)
    daemon = fake([wire.STARTED, "GO?", "hang"])
    cp = simhost.run_hotplug(entry(client), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.path,
                                                           "XENSCRIPTS_CLIENT_TIMEOUT": "2"})
    assert cp.returncode == 1
    assert "timed out after 2 s waiting for hotplugd" in simhost.xs.read(g.backend + "/hotplug-error")
    assert simhost.master_of(g.vif) is None  # started by the daemon, so never run here


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("answer", ["refuse", "dies"])
def test_a_refused_call_or_a_daemon_that_died_runs_in_process(simhost, fake, client, answer):
    g = simhost.add_guest(1)
    daemon = fake([wire.REFUSE + b"no"] if answer == "refuse" else [wire.STARTED, "GO?"])
    cp = simhost.run_hotplug(entry(client), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.path})
    assert cp.returncode == 0, cp.stderr
    assert simhost.master_of(g.vif) == "xenbr0"
    assert simhost.xs.read(g.backend + "/hotplug-status") == "connected"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_bad_client_timeout_is_named(simhost, fake, client):
    g = simhost.add_guest(1)
    daemon = fake(SERVED)
    cp = simhost.run_hotplug(entry(client), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.path,
                                                           "XENSCRIPTS_CLIENT_TIMEOUT": "forever"})
    assert cp.returncode == 1
    assert "client_timeout" in simhost.xs.read(g.backend + "/hotplug-error")
    assert not daemon.requests


def test_a_served_call_starts_no_python(simhost, tmp_path):
    """A launcher whose Python does not exist: hotplugd's calls still work; one it does not run says so."""
    from xensim.hotplugd import HotplugDaemon

    exe = tmp_path / "launch-nopython"
    assert launcher.build(exe, python="/nonexistent/python3") is None
    script = tmp_path / "vif-bridge"
    text = (BIN / "vif-bridge").read_text().replace("@SRC@", str(REPO)).replace("@VENV@", str(REPO / ".venv"))
    script.write_bytes(launcher.with_launcher(text.encode(), str(exe)))
    script.chmod(0o755)
    g = simhost.add_guest(1)
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")) as daemon:
        cp = simhost.run_hotplug([str(script)], 1, extra_env={"XENSCRIPTS_SOCKET": daemon.socket})
        assert cp.returncode == 0, cp.stderr
        assert daemon.served() == 1
    assert simhost.master_of(g.vif) == "xenbr0"
    cp = simhost.run_hotplug([str(script)], 1, "offline", extra_env={"XENSCRIPTS_SOCKET": str(tmp_path / "none")})
    assert cp.returncode == 1 and "cannot run /nonexistent/python3" in cp.stderr
    assert Path(launched_bin() / "vif-bridge").read_text().startswith("#!")
