"""Per-run log: syslog ``daemon.*`` (as upstream's ``logger``), the hotplug log file, stderr.

No process-global logging state: each run builds its own ``RunLog`` with the
streams it was given, so the same code can serve many requests in a daemon.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TextIO

DEFAULT_LOG_FILE = "/var/log/xen/xen-hotplug.log"
SYSLOG_SOCKET = "/dev/log"
_DAEMON = 3 << 3
_PRIORITY = {"err": 3, "warning": 4, "info": 6, "debug": 7}


class RunLog:
    """Log lines of one script run, each prefixed with the script name like upstream."""

    def __init__(self, script: str, stderr: TextIO | None, log_file: str | None = DEFAULT_LOG_FILE,
                 syslog_socket: str | None = SYSLOG_SOCKET) -> None:
        self.script = script
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

    def error(self, message: str) -> None:
        """Log an error: also written to stderr, which libxl shows its user."""
        self._emit("err", message)
        if self.stderr is not None:
            try:
                self.stderr.write(f"{self.script}: {message}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass

    def _emit(self, level: str, message: str) -> None:
        self.lines.append((level, message))
        line = f"{self.script}: {message}"
        self._syslog(level, line)
        self._append_file(level, line)

    def _syslog(self, level: str, line: str) -> None:
        """Send one datagram the way ``logger -p daemon.LEVEL`` does; no /dev/log is fine."""
        if not self.syslog_socket:
            return
        stamp = time.strftime("%b %d %H:%M:%S")
        packet = f"<{_DAEMON | _PRIORITY[level]}>{stamp} xenscripts[{os.getpid()}]: {line}"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.syslog_socket)
                # never wait for a stalled syslog reader: a full queue drops the line
                sock.send(packet.encode(errors="replace"), socket.MSG_DONTWAIT)
        except OSError:
            pass

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
        """Close the log file (the run is over)."""
        if self._file is not None:
            self._file.close()
            self._file = None
