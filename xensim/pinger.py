"""A background ping from one namespace that counts lost replies (dom0 stays reachable?)."""

from __future__ import annotations

import re
import signal
import subprocess
from typing import Self


class Pinger:
    """``ping -i 0.2`` from *ns* to *dst* until ``stop()``, which returns (sent, received)."""

    def __init__(self, ns: str, dst: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-i", "0.2", "-W", "1", dst],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def stop(self) -> tuple[int, int]:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        found = re.search(r"(\d+) packets transmitted, (\d+) received", out or "")
        return (int(found.group(1)), int(found.group(2))) if found else (0, 0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()
