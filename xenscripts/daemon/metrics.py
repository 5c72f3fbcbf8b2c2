"""hotplugd's numbers: per-command counters and latency histograms, in the Prometheus text format.

``metrics_file=`` in ``/etc/xen/xenscripts.conf`` (off by default) names the
file node_exporter's textfile collector reads; it is rewritten atomically
(a temporary file renamed over it) at most once a second while requests
come, by a background thread, never on a request's path.
"""

from __future__ import annotations

import os
import threading

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# served: exit 0; failed: exit non-zero; refused: the entry point then ran it in-process (fell back);
# handed_back: queued when hotplugd stopped, its caller then ran it in-process (fell back);
# busy: the queue was full (max_queue): the caller fails with that reason, never runs it in-process;
# dropped: its caller had gone, or it could no longer start in time (the caller fails saying so).
OUTCOMES = ("served", "failed", "refused", "handed_back", "busy", "dropped")
FLUSH_EVERY = 1.0


class Metrics:
    """Thread-safe counters and histograms; ``text()`` is the exposition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.dirty = threading.Event()

    def count(self, command: str, outcome: str) -> None:
        """One request of *command* ended with *outcome* (one of ``OUTCOMES``)."""
        with self._lock:
            self.counts[command, outcome] = self.counts.get((command, outcome), 0) + 1
        self.dirty.set()

    def observe(self, command: str, status: int, seconds: float) -> None:
        """A request run to its end: counted as served or failed, its time in the histogram."""
        with self._lock:
            counts = self.buckets.setdefault(command, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1  # +Inf, which is also the count
            self.sums[command] = self.sums.get(command, 0.0) + seconds
        self.count(command, "served" if status == 0 else "failed")

    def text(self) -> str:
        """The Prometheus text exposition of everything counted so far."""
        with self._lock:
            counts = dict(self.counts)
            buckets = {k: list(v) for k, v in self.buckets.items()}
            sums = dict(self.sums)
        lines = ["# HELP xenscripts_requests_total Hotplug requests hotplugd ended, by command and outcome.",
                 "# TYPE xenscripts_requests_total counter"]
        for (command, outcome), n in sorted(counts.items()):
            lines.append(f'xenscripts_requests_total{{command="{command}",outcome="{outcome}"}} {n}')
        lines += ["# HELP xenscripts_request_seconds Time hotplugd took to run a request, by command.",
                  "# TYPE xenscripts_request_seconds histogram"]
        for command, counts_le in sorted(buckets.items()):
            for bound, n in zip((*(f"{b:g}" for b in BUCKETS), "+Inf"), counts_le, strict=True):
                lines.append(f'xenscripts_request_seconds_bucket{{command="{command}",le="{bound}"}} {n}')
            lines.append(f'xenscripts_request_seconds_sum{{command="{command}"}} {sums[command]:.6f}')
            lines.append(f'xenscripts_request_seconds_count{{command="{command}"}} {counts_le[-1]}')
        return "\n".join(lines) + "\n"

    def write(self, path: str) -> None:
        """Rewrite *path* atomically (the textfile collector never reads half a file)."""
        self.dirty.clear()
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.text())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def write_or_say(self, path: str, say) -> None:
        """``write``; a file that cannot be written is a log line, never a failed daemon."""
        try:
            self.write(path)
        except OSError as e:
            say(f"hotplugd: cannot write metrics_file {path}: {e.strerror or e}")

    def start_writer(self, path: str, stopping: threading.Event, say) -> threading.Thread:
        """A background thread writing *path* now, then whenever something changed (at most once a second)."""
        def loop() -> None:
            while True:
                self.write_or_say(path, say)
                if stopping.is_set():
                    return
                self.dirty.wait()
                stopping.wait(FLUSH_EVERY)

        thread = threading.Thread(target=loop, name="metrics", daemon=True)
        thread.start()
        return thread
