"""Is hotplugd there? Its socket answers, its pidfile names a live process.

The probe is a request the daemon refuses without running anything (no
network namespace sent), so asking leaves no trace in its log.
"""

from __future__ import annotations

import os
import socket

from .. import wire

PIDFILE = "/run/xenscripts/hotplugd.pid"
UNKNOWN = "unknown"  # the daemon does not say how many requests it served, nor how fast


def socket_answers(path: str, timeout: float = 2.0) -> bool:
    """True when a daemon listens on *path* and replies to a request."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(wire.frame(wire.encode_request(["xenscripts-status"], {})))
            return len(sock.recv(5)) >= 5
    except OSError:
        return False


def pidfile_pid(pidfile: str = PIDFILE) -> int | None:
    """The pid in *pidfile* when that process is alive."""
    try:
        with open(pidfile, encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def daemon_state(socket_path: str, pidfile: str = PIDFILE) -> dict[str, object]:
    """What status reports about hotplugd."""
    answers = socket_answers(socket_path)
    pid = pidfile_pid(pidfile)
    return {"socket": socket_path, "answers": answers, "pid": pid, "running": answers or pid is not None,
            "served": UNKNOWN, "median_ms": UNKNOWN}
