"""Per-run log: syslog ``daemon.*`` (as upstream's ``logger``), the hotplug log file, stderr.

Upstream's split: every ``log`` line goes to syslog; the hotplug log file
(``/var/log/xen/xen-hotplug.log``) gets only what a script writes to stderr,
i.e. its errors and warnings. ``log_level`` drops lines below it everywhere.
No process-global logging state: each run builds its own ``RunLog`` with the
streams it was given, so the same code can serve many requests in a daemon.
Where journald runs, a line goes to it by its native protocol instead of
``/dev/log``, with structured fields (``XENSCRIPTS_COMMAND``, ``VIF``,
``DOMID``…) and a ``MESSAGE_ID`` per kind of event (``EVENTS``), so
``journalctl MESSAGE_ID=… VIF=vif3.0`` finds one guest's failures.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import TextIO

from .conf import read_config, setting

DEFAULT_LOG_FILE = "/var/log/xen/xen-hotplug.log"
SYSLOG_SOCKET = "/dev/log"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
# MESSAGE_ID per kind of event (journalctl MESSAGE_ID=...; documented in docs/admin.md).
EVENTS = {
    "success": "5b1b3d7e4c6a4f0e9a2d8c1f7e3b6a01",   # a script finished its work (upstream's "Successful ...")
    "failure": "5b1b3d7e4c6a4f0e9a2d8c1f7e3b6a02",   # an error: the run fails (hotplug-error)
    "warning": "5b1b3d7e4c6a4f0e9a2d8c1f7e3b6a03",   # a warning: the run goes on, degraded
}
_DAEMON = 3 << 3
_PRIORITY = {"err": 3, "warning": 4, "info": 6, "debug": 7}
LEVELS = {"error": 3, "warning": 4, "info": 6, "debug": 7}  # the ``log_level`` setting's names
_FILE_PRIORITY = 4  # the log file holds what upstream's scripts write to stderr: warnings, errors
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}


def one_line(text: str) -> str:
    """*text* with control characters escaped, so no value can forge a log line."""
    return text.translate(_CONTROL)


class RunLog:
    """Log lines of one script run, each prefixed with the script name like upstream."""

    def __init__(self, script: str, stderr: TextIO | None, log_file: str | None = DEFAULT_LOG_FILE,
                 syslog_socket: str | None = SYSLOG_SOCKET, level: str = "debug",
                 journal_socket: str | None = None) -> None:
        self.script = script
        self.journal_socket = journal_socket
        # structured fields of every journal entry; the vif frame adds VIF, DOMID, DEVID once it knows them
        self.fields: dict[str, str] = {"XENSCRIPTS_COMMAND": os.path.basename(script)}
        self.max_priority = LEVELS.get(level, LEVELS["debug"])
        self.stderr = stderr
        self.log_file = log_file
        self.syslog_socket = syslog_socket
        self.lines: list[tuple[str, str]] = []
        self._file: TextIO | None = None

    def debug(self, message: str) -> None:
        """Log a debug line (syslog and the log file only)."""
        self._emit("debug", message)

    def info(self, message: str) -> None:
        """Log an informational line (syslog and the log file only)."""
        self._emit("info", message)

    def warning(self, message: str) -> None:
        """Log a warning (syslog and the log file)."""
        self._emit("warning", message)

    def error(self, message: str) -> None:
        """Log an error: also written to stderr, which libxl shows its user."""
        self._emit("err", message)
        if self.stderr is not None:
            try:
                self.stderr.write(f"{self.script}: {one_line(message)}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass

    def _emit(self, level: str, message: str) -> None:
        self.lines.append((level, message))
        if _PRIORITY[level] > self.max_priority:
            return
        line = one_line(f"{self.script}: {message}")
        self._syslog(level, line)
        if _PRIORITY[level] <= _FILE_PRIORITY:
            self._append_file(level, line)

    def _journal(self, level: str, line: str) -> bool:
        """One entry by journald's native protocol (one datagram of ``KEY=value`` lines); True if sent."""
        fields = {"MESSAGE": line, "PRIORITY": str(_PRIORITY[level]), "SYSLOG_FACILITY": "3",
                  "SYSLOG_IDENTIFIER": "xenscripts", **self.fields}
        kind = {"err": "failure", "warning": "warning"}.get(level)
        if kind is None and line.startswith(f"{self.script}: Successful "):
            kind = "success"
        if kind:
            fields["MESSAGE_ID"] = EVENTS[kind]
        packet = "".join(f"{k}={one_line(v)}\n" for k, v in fields.items())
        assert self.journal_socket is not None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.journal_socket)
                sock.send(packet.encode(errors="replace"), socket.MSG_DONTWAIT)
        except OSError:
            return False
        return True

    def _syslog(self, level: str, line: str) -> None:
        """Send one datagram the way ``logger -p daemon.LEVEL`` does (journald's protocol where it runs)."""
        if self.journal_socket and self._journal(level, line):
            return
        if not self.syslog_socket:
            return
        send_syslog(self.syslog_socket, _DAEMON | _PRIORITY[level], "xenscripts", line)

    def _append_file(self, level: str, line: str) -> None:
        if not self.log_file:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            if self._file is None:
                self._file = open(self.log_file, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self._file.write(f"{stamp} [{level}] {line}\n")
            self._file.flush()
        except OSError:
            self.log_file = None

    def close(self) -> None:
        """Close the log file (the run is over); a full disk never changes the result."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def send_syslog(path: str, priority: int, tag: str, line: str) -> None:
    """One datagram to the syslog socket at *path*, as ``logger`` sends it; a missing or stalled reader is fine."""
    stamp = time.strftime("%b %d %H:%M:%S")
    packet = f"<{priority}>{stamp} {tag}[{os.getpid()}]: {line}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            # never wait for a stalled syslog reader: a full queue drops the line
            sock.send(packet.encode(errors="replace"), socket.MSG_DONTWAIT)
    except OSError:
        pass


def script_name(argv: list[str]) -> str:
    """The running script's name as upstream's messages give it (``vif-bridge``)."""
    return os.path.basename(argv[0]) if argv else "xenscripts"


def make_log(argv: list[str], env: Mapping[str, str], stderr: TextIO | None,
             conf: Mapping[str, str] | None = None) -> RunLog:
    """The run's log: file and level from the host's settings *conf* (read here when None; ``XENSCRIPTS_*`` in tests)."""
    if conf is None:
        conf = read_config(env)[0]
    syslog = env.get("XENSCRIPTS_SYSLOG", SYSLOG_SOCKET)
    journal = env.get("XENSCRIPTS_JOURNAL") or (JOURNAL_SOCKET if syslog == SYSLOG_SOCKET else None)
    log = RunLog(script=argv[0] if argv else "xenscripts", stderr=stderr,
                 log_file=env.get("XENSCRIPTS_LOG_FILE", conf.get("log_file", DEFAULT_LOG_FILE)),
                 syslog_socket=syslog, level=setting(env, conf, "log_level", "debug"),
                 journal_socket=journal if journal and os.path.exists(journal) else None)
    if len(argv) > 1:
        log.fields["XENSCRIPTS_ACTION"] = argv[1]
    return log
