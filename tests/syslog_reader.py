"""A stand-in for /dev/log: a unix datagram socket drained by a thread, and its fixture."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

# "<pri>Mmm dd hh:mm:ss xenscripts[pid]: <script>: <message>"
PACKET = re.compile(r"^<(?P<pri>\d+)>.*? xenscripts\[\d+\]: (?P<script>\S+): (?P<msg>.*)$", re.DOTALL)
LEVELS = {"3": "err", "4": "warning", "6": "info", "7": "debug"}


class SyslogReader:
    """A unix datagram socket (what /dev/log is) drained by a background thread."""

    def __init__(self) -> None:
        # unix socket paths are limited to 107 bytes; keep it short
        self.dir = tempfile.mkdtemp(prefix="xs-syslog-")
        self.path = os.path.join(self.dir, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.1)
        self._packets: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="syslog-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._packets.append(data.decode(errors="replace"))

    def packets(self) -> list[str]:
        with self._lock:
            return list(self._packets)

    def wait_for(self, pred: Callable[[list[str]], bool], timeout: float = 10.0) -> list[str]:
        """The packets once *pred* holds for them; fails after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.packets()
            if pred(got):
                return got
            if time.monotonic() >= deadline:
                pytest.fail(f"syslog: condition not met within {timeout}s; got {got!r}")
            self._stop.wait(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        alive = self._thread.is_alive()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not alive, "syslog reader thread did not stop"


@pytest.fixture
def syslog() -> Iterator[SyslogReader]:
    reader = SyslogReader()
    try:
        yield reader
    finally:
        reader.close()



def syslog_lines(packets: list[str]) -> list[tuple[str, str, str]]:
    """(level, script, message) of each datagram, as log_lines gives them for the file."""
    out = []
    for packet in packets:
        m = PACKET.match(packet)
        assert m, f"malformed syslog datagram: {packet!r}"
        out.append((LEVELS[str(int(m["pri"]) & 7)], m["script"], m["msg"]))
    return out
