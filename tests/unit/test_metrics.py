"""hotplugd's metrics file, read back with prometheus_client's own parser (an independent reader)."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from xenscripts.admin.report import metrics_counts, read_counts
from xenscripts.daemon.metrics import BUCKETS, Metrics


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_counters_and_histograms_parse_as_prometheus_text(tmp_path):
    m = Metrics()
    m.observe("vif-bridge", 0, 0.004)
    m.observe("vif-bridge", 0, 0.2)
    m.observe("vif-bridge", 1, 3.0)
    m.count("vif-route", "refused")
    m.count("vif-bridge", "dropped")
    path = tmp_path / "xenscripts.prom"
    m.write(str(path))
    parsed = families(path.read_text())
    totals = {(s.labels["command"], s.labels["outcome"]): s.value for s in parsed["xenscripts_requests"].samples}
    assert totals == {("vif-bridge", "served"): 2, ("vif-bridge", "failed"): 1, ("vif-bridge", "dropped"): 1,
                      ("vif-route", "refused"): 1}
    hist = parsed["xenscripts_request_seconds"]
    assert hist.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 1 and buckets["0.25"] == 2 and buckets["2.5"] == 2 and buckets["5"] == 3
    assert buckets["+Inf"] == 3 and len(buckets) == len(BUCKETS) + 1
    by_name = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}
    assert by_name["xenscripts_request_seconds_count"] == 3
    assert abs(by_name["xenscripts_request_seconds_sum"] - 3.204) < 1e-6
    assert read_counts(str(path)) == totals  # what xenscripts status shows
    assert metrics_counts(str(path)) == {"file": str(path), "mean_ms": {"vif-bridge": 1068.0},
                                         "requests": {"vif-bridge": {"served": 2, "failed": 1, "dropped": 1},
                                                      "vif-route": {"refused": 1}}}
    assert metrics_counts("") is None  # metrics_file unset: off
    assert [p.name for p in tmp_path.iterdir()] == ["xenscripts.prom"]  # no temporary file left


def test_the_writer_rewrites_the_file_after_new_requests(tmp_path):
    m = Metrics()
    stop = threading.Event()
    path = tmp_path / "m.prom"
    thread = m.start_writer(str(path), stop, lambda line: None)
    m.observe("vif-nat", 0, 0.01)
    for _ in range(50):
        if read_counts(str(path)).get(("vif-nat", "served")) == 1:
            break
        stop.wait(0.1)
    assert read_counts(str(path)) == {("vif-nat", "served"): 1}
    stop.set()
    m.dirty.set()
    thread.join(5)
    assert not thread.is_alive()


def test_a_metrics_file_that_cannot_be_written_is_a_log_line(tmp_path):
    said: list[str] = []
    Metrics().write_or_say(str(tmp_path / "no-such-dir" / "m.prom"), said.append)
    assert said == [f"hotplugd: cannot write metrics_file {tmp_path}/no-such-dir/m.prom: No such file or directory"]
