"""Is hotplugd there, and how has it served? Its socket answers, its pidfile, its log.

The probe is a request the daemon refuses without running anything (no
network namespace sent): at most one "refused" line in its log. How many
requests it served and their median time come from its own log lines
(``hotplugd: ran … in 12.3 ms``) since it last started: the journal on
systemd hosts; elsewhere its log goes nowhere and the answer is "unknown".
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterable, Mapping

from ..entry import wire

PIDFILE = "/run/xenscripts/hotplugd.pid"
UNIT = "xenscripts-hotplugd.service"
UNKNOWN = "unknown"
_RAN = re.compile(r"hotplugd: ran .* in ([0-9.]+) ms")


def socket_answers(path: str, timeout: float = 2.0) -> bool:
    """True when a daemon listens on *path* and replies to a request."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(wire.frame(_probe_request()))
            return len(sock.recv(5)) >= 5
    except OSError:
        return False


def _probe_request() -> bytes:
    """A request the daemon refuses: no network namespace comes with it."""
    soon = time.monotonic() + 2.0
    return wire.encode_request("xenscripts-status", ["xenscripts-status"], {}, soon, soon)


def served_stats(lines: Iterable[str]) -> tuple[int, float] | None:
    """(requests run, median ms) since the daemon last said it was listening; None before it ever did."""
    times: list[float] | None = None
    for line in lines:
        if "hotplugd: listening on" in line:
            times = []
        elif times is not None and (m := _RAN.search(line)):
            times.append(float(m.group(1)))
    if times is None:
        return None
    return len(times), (round(statistics.median(times), 1) if times else 0.0)


def daemon_log(env: Mapping[str, str]) -> list[str] | None:
    """The daemon's log lines: ``XENSCRIPTS_HOTPLUGD_LOG`` (tests), else the journal; None when neither."""
    path = env.get("XENSCRIPTS_HOTPLUGD_LOG")
    if path:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return None
    if not os.path.isdir("/run/systemd/system") or shutil.which("journalctl") is None:
        return None
    try:
        cp = subprocess.run(["journalctl", "-u", UNIT, "-b", "-o", "cat", "--no-pager", "-q", "-n", "200000"],
                            capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cp.stdout.splitlines() if cp.returncode == 0 else None


def pidfile_pid(pidfile: str = PIDFILE) -> int | None:
    """The pid in *pidfile* when that process is alive."""
    try:
        with open(pidfile, encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def daemon_state(socket_path: str, env: Mapping[str, str], pidfile: str = PIDFILE) -> dict[str, object]:
    """What status reports about hotplugd."""
    answers = socket_answers(socket_path)
    pid = pidfile_pid(pidfile)
    lines = daemon_log(env)
    stats = served_stats(lines) if lines is not None else None
    return {"socket": socket_path, "answers": answers, "pid": pid, "running": answers or pid is not None,
            "served": stats[0] if stats else UNKNOWN, "median_ms": stats[1] if stats else UNKNOWN}
