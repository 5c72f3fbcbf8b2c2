"""xenscripts-hotplugd: keeps the library warm and runs hotplug commands for thin clients.

One reception thread (``serve``) accepts every connection, reads its request
without blocking on any one client, and answers at once: QUEUED (a place in
the bounded queue), REFUSE (with the reason: the client may run it itself) or
BUSY (the queue cannot start it by its start-by); every refusal is logged. A
fixed pool of workers takes requests in order; each joins the caller's network
namespace (the fd the client sent), then calls the very same
``run_command(name, argv, env, stderr)`` the in-process path calls, after the
wire protocol's STARTED/GO handshake (``wire``). Workers start only once the
warm-up (imports, the nft binding) is done, so the first burst after a
socket-activated start waits for one warm-up instead of racing imports.
Requests for the same device are serialised host-wide by the vif frame's lock
file; nothing per request outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import itertools
import os
import queue
import select
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TextIO, cast

from ..commands import COMMANDS, run_command
from ..core.log import SYSLOG_SOCKET, send_syslog
from ..core.request import Request, serving
from ..entry import wire
from .metrics import Metrics
from .peer import capabilities, refusal

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl: the kind of namespace an nsfs fd is
REQUEST_READ_TIMEOUT = 5.0
WORKERS = 16  # requests run at once: enough to overlap their waits (xenstore, children, the kernel)
MAX_QUEUE = 4096  # admitted and waiting; beyond that a request is BUSY at once
FD_FLOOR = 1024  # queued connections and namespace fds live above this (FD_SETSIZE)
FD_LIMIT = 65536  # the soft RLIMIT_NOFILE the daemon asks for
GO_WAIT_MS = 50  # a worker waits this long for a caller's GO, then moves on to the next request
# Before it starts a request, a worker lets the reception answer every connection that has arrived (at
# most this long): under a boot storm all workers and the reception share one GIL, and a caller that
# hears nothing within its answer wait runs the command itself, the herd this daemon exists to avoid.
RECEPTION_FIRST = 0.2
NICE = -5  # the one server of every script's work outranks each script's own process
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


@dataclass
class Incoming:
    """A connection whose request is still being read."""

    conn: socket.socket
    since: float
    data: bytearray = field(default_factory=bytearray)
    nsfd: int = -1

    def close(self) -> None:
        if self.nsfd >= 0:
            os.close(self.nsfd)
            self.nsfd = -1
        self.conn.close()


@dataclass
class Job:
    """An admitted request, waiting for a worker."""

    conn: socket.socket
    name: str
    argv: list[str]
    env: dict[str, str]
    start_by: float
    deadline: float
    nsfd: int
    queued: float
    go: bool = False  # its caller has answered STARTED with GO: run it, no more handshake

    def words(self) -> str:
        return f"{' '.join(self.argv[:2])} vif={self.env.get('vif', '')}"

    def close(self) -> None:
        if self.nsfd >= 0:
            os.close(self.nsfd)
            self.nsfd = -1
        self.conn.close()


class Daemon:
    """Accepts clients on a root-only unix socket; a bounded queue before a fixed pool of workers.

    In *test_mode* (the test suite's daemons only) a request's ``XENSCRIPTS_*``
    variables steer its run; otherwise the daemon's own (from its start) do.
    """

    def __init__(self, listener: socket.socket, log=sys.stderr, own_env: dict[str, str] | None = None,
                 test_mode: bool = False, workers: int = WORKERS, max_queue: int = MAX_QUEUE) -> None:
        self.listener = listener
        self.log = log
        self.stopping = threading.Event()
        self.ready = threading.Event()  # set once the warm-up is done: workers wait for it
        self.received = threading.Event()  # set while no arrived request waits for its answer
        self.received.set()
        self.workers = max(1, workers)
        self.max_queue = max(0, max_queue)
        # (0: a job whose caller said GO, 1: a new one, 2: stop), admission order, the job
        self._queue: queue.PriorityQueue[tuple[int, int, Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._awaiting: queue.SimpleQueue[Job] = queue.SimpleQueue()  # STARTED sent, GO not yet read
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.own_caps = capabilities("self")
        self.own_env = {k: v for k, v in (own_env or {}).items() if k.startswith("XENSCRIPTS_")}
        self.test_mode = test_mode
        self._log_lock = threading.Lock()
        self.metrics = Metrics()
        self.warm: object | None = None  # what warm-up made for the requests (the nft context pool)

    # ---------------------------------------------------------------- reception
    def serve(self, warm: Callable[[], object] | None = None) -> None:
        """Serve until stop(); then hand queued requests back and finish those in flight.

        *warm* runs in the background while requests are already admitted; no worker starts one before it is done."""
        pool = [threading.Thread(target=self._work, name=f"hotplugd-worker-{i}") for i in range(self.workers)]
        for worker in pool:
            worker.start()
        if warm is None:
            self.ready.set()
        else:
            threading.Thread(target=self._warm, args=(warm,), name="hotplugd-warm-up", daemon=True).start()
        incoming: dict[int, Incoming] = {}
        awaiting: dict[int, Job] = {}
        self.listener.setblocking(False)
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                events = sel.select(0.2)
                if any(key.fileobj is self.listener or key.fd in incoming for key, _ in events):
                    self.received.clear()
                for key, _ in events:
                    if key.fileobj is self.listener:
                        self._accept(sel, incoming)
                    elif key.fileobj == self._wake_r:
                        self._take_awaiting(sel, awaiting)
                    elif key.fd in awaiting:
                        self._go(sel, awaiting, awaiting[key.fd])
                    else:
                        self._receive(sel, incoming, incoming[key.fd])
                self._expire(sel, incoming, awaiting)
                if not incoming:
                    self.received.set()
            self.received.set()
            for item in incoming.values():
                item.close()
            for job in awaiting.values():
                job.close()
        self.listener.close()
        self._hand_back()
        for _ in pool:
            self._queue.put((2, next(self._order), None))
        self.ready.set()
        for worker in pool:
            worker.join()

    def _accept(self, sel: selectors.BaseSelector, incoming: dict[int, Incoming]) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if self.stopping.is_set():
                    return
                self.say(f"hotplugd: accept failed: {e}")
                return
            conn = socket.socket(fileno=_high(conn.detach()))
            conn.setblocking(False)
            incoming[conn.fileno()] = Incoming(conn, time.monotonic())
            sel.register(conn, selectors.EVENT_READ)

    def _receive(self, sel: selectors.BaseSelector, incoming: dict[int, Incoming], item: Incoming) -> None:
        """Read what has arrived of *item*'s request; once it is whole, answer it."""
        try:
            complete = _read_some(item)
        except (OSError, ValueError) as e:
            self.say(f"hotplugd: request failed: {e}")
            complete, item.data = True, bytearray()
        if not complete:
            return
        sel.unregister(item.conn)
        del incoming[item.conn.fileno()]
        try:
            if item.data:
                self._admit(item)
                return
        except (OSError, ValueError) as e:
            self.say(f"hotplugd: request failed: {e}")
        item.close()

    def _take_awaiting(self, sel: selectors.BaseSelector, awaiting: dict[int, Job]) -> None:
        """Watch the connections of the jobs whose callers have not said GO yet (a worker moved on)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while True:
            try:
                job = self._awaiting.get_nowait()
            except queue.Empty:
                return
            awaiting[job.conn.fileno()] = job
            sel.register(job.conn, selectors.EVENT_READ)

    def _go(self, sel: selectors.BaseSelector, awaiting: dict[int, Job], job: Job) -> None:
        """The caller of a STARTED job answered: GO puts it first in the queue; anything else drops it."""
        sel.unregister(job.conn)
        del awaiting[job.conn.fileno()]
        try:
            answer = job.conn.recv(1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            answer = b"?"
        except OSError:
            answer = b""
        if answer == wire.GO and time.monotonic() < job.deadline:
            job.go = True
            self._queue.put((0, next(self._order), job))
            return
        self.metrics.count(job.name, "dropped")
        self.say(f"hotplugd: dropped {job.words()}: its caller did not take it")
        job.close()

    def _expire(self, sel: selectors.BaseSelector, incoming: dict[int, Incoming], awaiting: dict[int, Job]) -> None:
        now = time.monotonic()
        for job in [j for j in awaiting.values() if now > min(j.start_by, j.deadline)]:
            self.metrics.count(job.name, "dropped")
            self.say(f"hotplugd: dropped {job.words()}: its caller did not take it")
            sel.unregister(job.conn)
            del awaiting[job.conn.fileno()]
            job.close()
        for item in [i for i in incoming.values() if now - i.since > REQUEST_READ_TIMEOUT]:
            self.say(f"hotplugd: request failed: not sent whole within {REQUEST_READ_TIMEOUT:g} s")
            sel.unregister(item.conn)
            del incoming[item.conn.fileno()]
            item.close()

    def _admit(self, item: Incoming) -> None:
        """Queue the request (QUEUED), or answer REFUSE / BUSY at once; the connection is the job's or closed."""
        name, argv, env, start_by, deadline = wire.decode_request(bytes(item.data[4:]))
        conn, words = item.conn, f"{' '.join(argv[:2])} vif={env.get('vif', '')}"
        conn.setblocking(True)
        conn.settimeout(1.0)
        if _peer_gone(conn):
            self.metrics.count(name, "dropped")
            self.say(f"hotplugd: dropped {words}: its caller has gone")
            return item.close()
        reason = refusal(conn, self.own_caps)
        if not reason and item.nsfd < 0:
            reason = "no network namespace sent"
        if not reason and not _is_netns(item.nsfd):
            reason = "the fd sent is not a network namespace"
        if not reason and (name not in COMMANDS or name == "vif-setup"):  # vif-setup's $script runs in the caller
            reason = f"{name} is not served here"
        if reason:
            self._refuse(conn, reason, name)
            return item.close()
        now, waiting = time.monotonic(), self._queue.qsize()
        if now > start_by:
            self.metrics.count(name, "dropped")
            self.say(f"hotplugd: dropped {words}: stale (its caller has given up on it)")
            return item.close()
        if waiting < self.max_queue:
            conn.sendall(wire.frame(wire.QUEUED))
            self._queue.put((1, next(self._order), Job(conn, name, argv, env, start_by, deadline, item.nsfd, now)))
            return
        busy = f"{waiting} requests queued (max_queue {self.max_queue})"
        self.metrics.count(name, "busy")
        self.say(f"hotplugd: refused {words}: busy: {busy}")
        conn.sendall(wire.frame(wire.BUSY + f"hotplugd is busy: {busy}".encode()))
        item.close()

    def _hand_back(self) -> None:
        """Stopping: close the queued requests unstarted (their callers then run them, exactly once)."""
        handed = 0
        while True:
            try:
                _prio, _n, job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.close()
                self.metrics.count(job.name, "handed_back")
                handed += 1
        if handed:
            self.say(f"hotplugd: stopping: {handed} queued requests handed back to their callers")

    def _warm(self, warm: Callable[[], object]) -> None:
        started = time.monotonic()
        try:
            self.warm = warm()
        except Exception:  # noqa: BLE001 - requests then import what they need themselves, one at a time
            self.say(f"hotplugd: warm-up failed:\n{traceback.format_exc()}")
        self.say(f"hotplugd: warm in {time.monotonic() - started:.2f} s")
        self.ready.set()

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

    # ---------------------------------------------------------------- workers
    def _work(self) -> None:
        self.ready.wait()
        while True:
            self.received.wait(RECEPTION_FIRST)
            _prio, _n, job = self._queue.get()
            if job is None:
                return
            handed = False
            try:
                handed = self._handle(job)
            finally:
                if not handed:
                    job.close()

    def _handle(self, job: Job) -> bool:
        """Run *job*; True when it went back to the reception to wait for its caller's GO (not closed)."""
        conn = job.conn
        try:
            if not job.go and time.monotonic() > job.start_by:
                self.metrics.count(job.name, "dropped")
                self.say(f"hotplugd: dropped {job.words()}: not started by its start-by "
                         f"(queued {time.monotonic() - job.queued:.1f} s)")
                return False
            if _libc.setns(job.nsfd, CLONE_NEWNET) != 0:
                self._refuse(conn, f"setns failed: {os.strerror(ctypes.get_errno())}", job.name)
                return False
            if not job.go:
                conn.sendall(wire.frame(wire.STARTED))
                # A caller starved of CPU may answer late: a worker never waits long for it; the
                # reception thread watches for the GO and puts the job first in the queue then.
                answered = select.poll()
                answered.register(conn.fileno(), select.POLLIN)
                if not answered.poll(GO_WAIT_MS):
                    self._awaiting.put(job)
                    os.write(self._wake_w, b"!")
                    return True
                conn.settimeout(1.0)
                if conn.recv(1) != wire.GO or time.monotonic() > job.deadline:
                    self.metrics.count(job.name, "dropped")
                    self.say(f"hotplugd: dropped {job.words()}: its caller did not take it")
                    return False
            conn.settimeout(None)
            started = time.monotonic()
            with serving(Request(job.deadline, caller_gone=partial(_peer_gone, conn), warm=self.warm)):
                status = self._run(job.name, job.argv, self._env_for(job.env), conn)
            self.say(f"hotplugd: ran {' '.join(job.argv)} vif={job.env.get('vif', '')}: "
                     f"status {status} in {1000 * (time.monotonic() - started):.1f} ms "
                     f"(queued {1000 * (started - job.queued):.0f} ms)")
            conn.sendall(wire.frame(wire.EXIT + str(status).encode()))
            self.metrics.observe(job.name, status, time.monotonic() - started)
        except (OSError, ValueError) as e:
            self.say(f"hotplugd: request failed: {e}")
        return False

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
            err, out = cast(TextIO, FrameWriter(conn)), cast(TextIO, FrameWriter(conn, wire.STDOUT))
            return run_command(name, argv, env, err, out)
        except Exception:  # noqa: BLE001 - a bug must not take the daemon down
            self.say(f"hotplugd: {name} crashed:\n{traceback.format_exc()}")
            return 1


def _high(fd: int) -> int:
    """*fd* moved to FD_FLOOR or above (the original closed), so that what waits in the queue
    leaves the low fds to libraries that still use select() (libnftables' netlink talk does)."""
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FD_FLOOR)
    except OSError:
        return fd  # no room up there (a low RLIMIT_NOFILE): keep it where it is
    os.close(fd)
    return moved


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE as far as the hard one allows (each queued request holds two fds)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if want == resource.RLIM_INFINITY:
        want = FD_LIMIT
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (OSError, ValueError):
            pass
    return soft


def _is_netns(fd: int) -> bool:
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False


def _peer_gone(conn: socket.socket) -> bool:
    """True once the client has closed its end (it timed out, or libxl killed it); never waits."""
    readable = select.poll()
    readable.register(conn.fileno(), select.POLLIN)
    if not readable.poll(0):
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _read_some(item: Incoming) -> bool:
    """Read what has arrived of *item*'s request frame (and its namespace fd); True once it is whole.

    Raises ValueError (or OSError) on a closed, oversized or broken connection; extra fds are closed."""
    while True:
        size = int.from_bytes(item.data[:4], "little") if len(item.data) >= 4 else None
        if size is not None and len(item.data) >= 4 + size:
            return True
        try:
            chunk, ancdata, _flags, _addr = item.conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        except (BlockingIOError, InterruptedError):
            return False
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - 3, 4)]
                for extra in (fds if item.nsfd >= 0 else fds[1:]):
                    os.close(extra)
                if fds and item.nsfd < 0:
                    item.nsfd = _high(fds[0])
        if not chunk:
            raise ValueError("client closed the connection")
        item.data += chunk
        if len(item.data) > wire.MAX_FRAME:
            raise ValueError("request too large")


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
    sock.listen(socket.SOMAXCONN)  # a boot storm connects all at once
    return sock


def warm_up() -> object:
    """Import and exercise what requests need, so the first ones are fast and none races an import;
    the warm state every request is handed (the nft context pool)."""
    from importlib import import_module

    from pyroute2 import IPRoute

    from ..firewall import libnft

    for module in set(COMMANDS.values()):
        import_module(f"xenscripts.commands.{module}")
    for module in ("subprocess", "xenscripts.firewall.backend_nft", "xenscripts.firewall.backend_legacy",
                   "xenscripts.firewall.xtables", "xenscripts.firewall.conntrack", "pyroute2.conntrack",
                   "xenscripts.xen.ovsdb", "ovs.db.idl", "ovs.db.custom_index", "ovs.jsonrpc", "ovs.stream",
                   "ovs.poller", "xenscripts.firewall.openflow", "xenscripts.netlink.bridgevlan"):
        import_module(module)
    with IPRoute() as ipr:
        ipr.link("get", index=1)
    with contextlib.suppress(Exception):  # a broken binding: its nft requests say so
        libnft.binding()
    return libnft.ContextPool()  # the daemon's warm nft contexts, lent to each request (Request.warm)


class SyslogWriter:
    """The detached daemon's log: each line a ``daemon.info`` datagram to /dev/log."""

    def __init__(self, path: str = SYSLOG_SOCKET) -> None:
        self.path = path

    def write(self, text: str) -> int:
        for line in text.splitlines():
            send_syslog(self.path, 30, "xenscripts-hotplugd", line)  # daemon.info
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
    parser.add_argument("--workers", type=int, default=WORKERS, help="requests run at once (%(default)s)")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                        help="requests waiting beyond which new ones are refused as busy (%(default)s)")
    parser.add_argument("--nice", type=int, default=NICE, help="the daemon's nice value (%(default)s)")
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
    try:  # before any thread starts: threads inherit it (Linux nice values are per thread)
        os.setpriority(os.PRIO_PROCESS, 0, opts.nice)
    except OSError:
        pass
    log = sys.stderr
    if not opts.foreground:
        _daemonize(opts.pidfile)
        log = SyslogWriter(os.environ.get("XENSCRIPTS_SYSLOG") or SYSLOG_SOCKET)
    fd_limit = raise_fd_limit()
    room = max(0, (fd_limit - FD_FLOOR - 64) // 2)  # two fds per queued request, above the floor
    daemon = Daemon(listener, log=log, own_env=dict(os.environ), test_mode=opts.test_mode,
                    workers=opts.workers, max_queue=min(opts.max_queue, room) if room else opts.max_queue)
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    daemon.say(f"hotplugd: listening on {opts.socket} ({daemon.workers} workers, queue {daemon.max_queue}, "
               f"started in {time.monotonic() - started:.2f} s)")
    from ..firewall import monitor  # our nft tables vanishing (flush ruleset): restored, logged
    monitor.start(daemon.say)
    metrics_file = setting(os.environ, conf, "metrics_file", "")
    if metrics_file:
        daemon.metrics.start_writer(metrics_file, daemon.stopping, daemon.say)
    daemon.serve(warm=warm_up)
    if metrics_file:
        daemon.metrics.write_or_say(metrics_file, daemon.say)  # the last requests' numbers too


if __name__ == "__main__":
    main()
