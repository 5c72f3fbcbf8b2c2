"""Start and stop a real xenscripts-hotplugd for tests, the demo and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from .ours import REPO


class HotplugDaemon:
    """A ``xenscripts-hotplugd --foreground`` child on its own socket; stderr to a log file."""

    def __init__(self, socket_path: str, log_path: str | None = None, test_mode: bool = True,
                 env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> None:
        self.socket = socket_path
        self.prefix = prefix  # e.g. setpriv with a capability bounding set
        self.test_mode = test_mode
        self.extra_env = env or {}
        self.log_path = log_path or socket_path + ".log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Self:
        Path(self.socket).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("XENSCRIPTS_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "xenscripts.daemon.server", "--foreground", "--socket", self.socket,
                 *(["--test-mode"] if self.test_mode else [])],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hotplugd did not start: {Path(self.log_path).read_text()}")
            time.sleep(0.02)
        return self

    def _ready(self) -> bool:
        return os.path.exists(self.socket) and b"listening" in Path(self.log_path).read_bytes()

    def served(self) -> int:
        """How many requests the daemon has run (from its log)."""
        return Path(self.log_path).read_bytes().count(b"hotplugd: ran ")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            for path in (self.socket, self.socket + ".lock"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
