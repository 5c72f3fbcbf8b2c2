"""Who is on the other end of a hotplugd connection, and may it have the work done?

Only a peer that could do the work itself: uid 0 with effective capabilities
covering the daemon's. The peer's capabilities are read from
``/proc/<pid>/status`` while a pidfd (``SO_PEERPIDFD``, Linux 6.5+) proves
that pid is still the peer; on older kernels the pid's start time is read
before and after instead.
"""

from __future__ import annotations

import os
import signal
import socket
import struct

SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)


def capabilities(pid: int | str) -> int:
    """The effective capability mask of *pid* (``"self"`` for this process)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise OSError(f"no CapEff in /proc/{pid}/status")


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def peer_capabilities(conn: socket.socket, pid: int) -> int:
    """The peer's effective capabilities, read without racing a pid reuse."""
    try:
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        try:
            caps = capabilities(pid)
            signal.pidfd_send_signal(pidfd, 0)  # ESRCH: the peer died, the pid may be another's
            return caps
        finally:
            os.close(pidfd)
    before = _start_time(pid)
    caps = capabilities(pid)
    if _start_time(pid) != before:
        raise OSError(f"peer pid {pid} changed while its capabilities were read")
    return caps


def refusal(conn: socket.socket, own_caps: int) -> str | None:
    """Why this peer may not have work done by the daemon, or None if it may."""
    pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid != 0:
        return f"peer pid {pid} is uid {uid}, not root"
    if pid <= 0:
        return "peer pid not visible here"
    try:
        caps = peer_capabilities(conn, pid)
    except OSError as e:
        return f"cannot read the capabilities of peer pid {pid}: {e}"
    missing = own_caps & ~caps
    if missing:
        return f"peer pid {pid} lacks capabilities the daemon has (missing mask {missing:#x})"
    return None
