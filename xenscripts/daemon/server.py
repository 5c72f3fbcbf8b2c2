"""xenscripts-hotplugd: keeps the library warm and runs hotplug commands for thin clients.

Each request runs in a fresh thread that first joins the caller's network
namespace (the fd the client sent), then calls the very same
``run_command(name, argv, env, stderr)`` the in-process path calls, after the
wire protocol's STARTED/GO handshake (``wire``). Requests for the same device
are serialised host-wide by the vif frame's lock file; nothing per-request
outlives its thread.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
import time
import traceback
from functools import partial

from ..commands import COMMANDS, run_command
from ..core.request import Request, serving
from ..entry import wire
from .metrics import Metrics
from .peer import capabilities, refusal

CLONE_NEWNET = 0x40000000
REQUEST_READ_TIMEOUT = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


class FrameWriter:
    """A text stream whose writes become stderr (or stdout) frames on the client connection."""

    def __init__(self, conn: socket.socket, kind: bytes = wire.STDERR) -> None:
        self.conn = conn
        self.kind = kind

    def write(self, text: str) -> int:
        if text:
            self.conn.sendall(wire.frame(self.kind + text.encode("utf-8", "replace")))
        return len(text)

    def flush(self) -> None:
        pass


class Daemon:
    """Accepts clients on a root-only unix socket; one thread per request.

    In *test_mode* (the test suite's daemons only) a request's ``XENSCRIPTS_*``
    variables steer its run; otherwise the daemon's own (from its start) do.
    """

    def __init__(self, listener: socket.socket, log=sys.stderr, own_env: dict[str, str] | None = None,
                 test_mode: bool = False) -> None:
        self.listener = listener
        self.log = log
        self.stopping = threading.Event()
        self._workers: set[threading.Thread] = set()
        self.own_caps = capabilities("self")
        self.own_env = {k: v for k, v in (own_env or {}).items() if k.startswith("XENSCRIPTS_")}
        self.test_mode = test_mode
        self._log_lock = threading.Lock()
        self.metrics = Metrics()

    def serve(self) -> None:
        """Serve until stop(); then wait for the requests in flight."""
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=False)
            self._workers.add(worker)
            worker.start()
            self._workers = {w for w in self._workers if w.is_alive()}
        self.listener.close()
        for worker in list(self._workers):
            worker.join()

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def say(self, line: str) -> None:
        """One line to the daemon's log (stderr, or syslog when detached); never fails."""
        with self._log_lock:
            try:
                self.log.write(line.replace("\n", "\\n") + "\n")
                self.log.flush()
            except (OSError, ValueError):
                pass

    def _handle(self, conn: socket.socket) -> None:
        nsfd = -1
        try:
            conn.settimeout(REQUEST_READ_TIMEOUT)
            name, argv, env, start_by, deadline, nsfd = _read_request(conn)  # read first: closing on unread data resets
            reason = refusal(conn, self.own_caps)
            if reason:
                return self._refuse(conn, reason, name)
            if nsfd < 0:
                return self._refuse(conn, "no network namespace sent", name)
            if name not in COMMANDS or name == "vif-setup":  # vif-setup's $script runs in the caller
                return self._refuse(conn, f"{name} is not served here", name)
            if time.monotonic() > start_by:
                self.metrics.count(name, "dropped")
                return self.say(f"hotplugd: dropped {' '.join(argv[:2])}: stale (its caller has given up on it)")
            if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                return self._refuse(conn, f"setns failed: {os.strerror(ctypes.get_errno())}", name)
            conn.sendall(wire.frame(wire.STARTED))
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            if conn.recv(1) != wire.GO or time.monotonic() > deadline:
                self.metrics.count(name, "dropped")
                return self.say(f"hotplugd: dropped {' '.join(argv[:2])}: its caller did not take it")
            conn.settimeout(None)
            started = time.monotonic()
            with serving(Request(deadline, caller_gone=partial(_peer_gone, conn))):
                status = self._run(name, argv, self._env_for(env), conn)
            took = time.monotonic() - started
            self.say(f"hotplugd: ran {' '.join(argv)} vif={env.get('vif', '')}: status {status} in {1000 * took:.1f} ms")
            conn.sendall(wire.frame(wire.EXIT + str(status).encode()))
            self.metrics.observe(name, status, took)
        except (OSError, ValueError) as e:
            self.say(f"hotplugd: request failed: {e}")
        finally:
            if nsfd >= 0:
                os.close(nsfd)
            conn.close()

    def _env_for(self, env: dict[str, str]) -> dict[str, str]:
        """The run's environment: the request's, with the daemon's own ``XENSCRIPTS_*`` settings."""
        if self.test_mode:
            return env
        clean = {k: v for k, v in env.items() if not k.startswith("XENSCRIPTS_")}
        clean.update(self.own_env)
        return clean

    def _refuse(self, conn: socket.socket, reason: str, name: str = "") -> None:
        self.metrics.count(name if name in COMMANDS else "other", "refused")
        self.say(f"hotplugd: refused: {reason}")
        conn.sendall(wire.frame(wire.REFUSE + reason.encode()))

    def _run(self, name: str, argv: list[str], env: dict[str, str], conn: socket.socket) -> int:
        try:
            return run_command(name, argv, env, FrameWriter(conn), FrameWriter(conn, wire.STDOUT))
        except Exception:  # noqa: BLE001 - a bug must not take the daemon down
            self.say(f"hotplugd: {name} crashed:\n{traceback.format_exc()}")
            return 1


def _peer_gone(conn: socket.socket) -> bool:
    """True once the client has closed its end (it timed out, or libxl killed it)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _read_request(conn: socket.socket) -> tuple[str, list[str], dict[str, str], float, float, int]:
    """Read one request frame and the namespace fd that came with it (closed again on any error)."""
    data = b""
    nsfd = -1
    try:
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "little"):
            chunk, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - 3, 4)]
                    for extra in (fds if nsfd >= 0 else fds[1:]):
                        os.close(extra)
                    if fds and nsfd < 0:
                        nsfd = fds[0]
            if not chunk:
                raise ValueError("client closed the connection")
            data += chunk
            if len(data) > wire.MAX_FRAME:
                raise ValueError("request too large")
        name, argv, env, start_by, deadline = wire.decode_request(data[4:])
    except BaseException:
        if nsfd >= 0:
            os.close(nsfd)
        raise
    return name, argv, env, start_by, deadline, nsfd


def listen(path: str) -> socket.socket:
    """The listening socket: systemd's (socket activation) or a new root-only one."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
        return socket.socket(fileno=3)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def warm_up() -> None:
    """Import and exercise what requests need, so the first one is fast too."""
    from importlib import import_module

    from pyroute2 import IPRoute

    for module in set(COMMANDS.values()):
        import_module(f"xenscripts.commands.{module}")
    with IPRoute() as ipr:
        ipr.link("get", index=1)


class SyslogWriter:
    """The detached daemon's log: each line a ``daemon.info`` datagram to /dev/log."""

    def __init__(self, path: str = "/dev/log") -> None:
        self.path = path

    def write(self, text: str) -> int:
        for line in text.splitlines():
            packet = f"<30>xenscripts-hotplugd[{os.getpid()}]: {line}".encode(errors="replace")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.connect(self.path)
                    sock.send(packet, socket.MSG_DONTWAIT)
            except OSError:
                pass
        return len(text)

    def flush(self) -> None:
        pass


def claim_instance(socket_path: str) -> int:
    """Hold ``<socket>.lock`` for the daemon's life; exit if another daemon holds it."""
    import fcntl

    os.makedirs(os.path.dirname(socket_path), mode=0o700, exist_ok=True)
    fd = os.open(socket_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"xenscripts-hotplugd: another instance is serving {socket_path}; not starting")
    return fd


def _daemonize(pidfile: str) -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")


def main(argv: list[str] | None = None) -> None:
    """``xenscripts-hotplugd [--foreground] [--socket PATH] [--pidfile PATH]``."""
    from ..core.conf import ConfigError, load_config, setting

    try:
        conf = load_config(os.environ)
        default_socket = setting(os.environ, conf, "socket", wire.DEFAULT_SOCKET)
    except ConfigError as e:
        sys.exit(f"xenscripts-hotplugd: {e}")
    parser = argparse.ArgumentParser(prog="xenscripts-hotplugd", description=__doc__)
    parser.add_argument("--foreground", action="store_true", help="do not detach (systemd, tests)")
    parser.add_argument("--socket", default=default_socket)
    parser.add_argument("--pidfile", default="/run/xenscripts/hotplugd.pid")
    parser.add_argument("--test-mode", action="store_true",
                        help="let requests' XENSCRIPTS_* variables steer their runs (the test suite only)")
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("xenscripts-hotplugd: must run as root")
    started = time.monotonic()
    activated = os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1"
    if not activated:
        claim_instance(opts.socket)
    listener = listen(opts.socket)
    warm_up()
    log = sys.stderr
    if not opts.foreground:
        _daemonize(opts.pidfile)
        log = SyslogWriter(os.environ.get("XENSCRIPTS_SYSLOG") or "/dev/log")
    daemon = Daemon(listener, log=log, own_env=dict(os.environ), test_mode=opts.test_mode)
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    metrics_file = setting(os.environ, conf, "metrics_file", "")
    if metrics_file:
        daemon.metrics.start_writer(metrics_file, daemon.stopping, daemon.say)
    daemon.say(f"hotplugd: listening on {opts.socket} (ready in {time.monotonic() - started:.2f} s)")
    daemon.serve()
    if metrics_file:
        daemon.metrics.write(metrics_file)  # the last requests' numbers too


if __name__ == "__main__":
    main()
