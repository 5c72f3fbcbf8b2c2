"""xenscripts-hotplugd: keeps the library warm and runs hotplug commands for thin clients.

Each request runs in a fresh thread that first joins the caller's network
namespace (the fd the client sent), then calls the very same
``run_command(name, argv, env, stderr)`` the in-process path calls. Requests
for the same vif are serialised; nothing per-request outlives its thread.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from . import wire
from .cli import command_name
from .commands import COMMANDS, run_command

CLONE_NEWNET = 0x40000000
REQUEST_READ_TIMEOUT = 5.0
RESOURCE_WAIT = 15.0  # then refuse: the client runs the command itself, well before libxl's 40 s
_libc = ctypes.CDLL(None, use_errno=True)


class FrameWriter:
    """A text stream whose writes become stderr frames on the client connection."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, text: str) -> int:
        if text:
            self.conn.sendall(wire.frame(wire.STDERR + text.encode("utf-8", "replace")))
        return len(text)

    def flush(self) -> None:
        pass


class Daemon:
    """Accepts clients on a root-only unix socket; one thread per request."""

    def __init__(self, listener: socket.socket, log=sys.stderr) -> None:
        self.listener = listener
        self.log = log
        self.stopping = threading.Event()
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._workers: set[threading.Thread] = set()

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

    def _handle(self, conn: socket.socket) -> None:
        nsfd = -1
        try:
            conn.settimeout(REQUEST_READ_TIMEOUT)
            pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            argv, env, nsfd = _read_request(conn)  # read first: closing on unread data resets
            if uid != 0:
                return _refuse(conn, f"peer pid {pid} is uid {uid}, not root")
            if nsfd < 0:
                return _refuse(conn, "no network namespace sent")
            name = command_name(argv)
            if name not in COMMANDS:
                return _refuse(conn, f"{name} is not served here")
            if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                return _refuse(conn, f"setns failed: {os.strerror(ctypes.get_errno())}")
            conn.settimeout(None)
            started = time.monotonic()
            lock = self._resource_lock(nsfd, env)
            if not lock.acquire(timeout=RESOURCE_WAIT):
                return _refuse(conn, "another request for this vif is still running")
            try:
                status = self._run(name, argv, env, conn)
            finally:
                lock.release()
            self.log.write(f"hotplugd: ran {' '.join(argv)} vif={env.get('vif', '')} for pid {pid}: "
                           f"status {status} in {1000 * (time.monotonic() - started):.1f} ms\n")
            self.log.flush()
            conn.sendall(wire.frame(wire.EXIT + str(status).encode()))
        except (OSError, ValueError) as e:
            self.log.write(f"hotplugd: request failed: {e}\n")
        finally:
            if nsfd >= 0:
                os.close(nsfd)
            conn.close()

    def _run(self, name: str, argv: list[str], env: dict[str, str], conn: socket.socket) -> int:
        try:
            return run_command(name, argv, env, FrameWriter(conn))
        except Exception:  # noqa: BLE001 - a bug must not take the daemon down
            self.log.write(f"hotplugd: {name} crashed:\n{traceback.format_exc()}")
            return 1

    def _resource_lock(self, nsfd: int, env: dict[str, str]) -> threading.Lock:
        """One lock per (network namespace, vif): requests for one vif run one at a time."""
        key = (os.fstat(nsfd).st_ino, env.get("vif") or env.get("INTERFACE") or "")
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())


def _read_request(conn: socket.socket) -> tuple[list[str], dict[str, str], int]:
    """Read one request frame and the namespace fd that came with it."""
    data = b""
    nsfd = -1
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "little"):
        chunk, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - 3, 4)]
                for extra in fds[1:]:
                    os.close(extra)
                if fds and nsfd < 0:
                    nsfd = fds[0]
        if not chunk:
            raise ValueError("client closed the connection")
        data += chunk
        if len(data) > wire.MAX_FRAME:
            raise ValueError("request too large")
    argv, env = wire.decode_request(data[4:])
    return argv, env, nsfd


def _refuse(conn: socket.socket, reason: str) -> None:
    conn.sendall(wire.frame(wire.REFUSE + reason.encode()))


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
    """``xenscripts-hotplugd [--foreground] [--socket PATH]``."""
    parser = argparse.ArgumentParser(prog="xenscripts-hotplugd", description=__doc__)
    parser.add_argument("--foreground", action="store_true", help="do not detach (systemd, tests)")
    parser.add_argument("--socket", default=os.environ.get("XENSCRIPTS_SOCKET", wire.DEFAULT_SOCKET))
    parser.add_argument("--pidfile", default="/run/xenscripts/hotplugd.pid")
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("xenscripts-hotplugd: must run as root")
    started = time.monotonic()
    listener = listen(opts.socket)
    warm_up()
    if not opts.foreground:
        _daemonize(opts.pidfile)
    daemon = Daemon(listener)
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    sys.stderr.write(f"hotplugd: listening on {opts.socket} (ready in {time.monotonic() - started:.2f} s)\n")
    sys.stderr.flush()
    daemon.serve()


if __name__ == "__main__":
    main()
