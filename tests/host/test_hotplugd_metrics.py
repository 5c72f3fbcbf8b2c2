"""hotplugd's metrics_file (set in the config file) after real requests: served, failed and refused, read with
prometheus_client, and shown by ``xenscripts status``."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.host.test_admin import xenscripts
from tests.host.test_hotplugd import raw_request
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command


def test_served_failed_and_refused_requests_are_counted_and_timed(simhost, tmp_path):
    prom = tmp_path / "textfile" / "xenscripts.prom"
    prom.parent.mkdir()
    conf = tmp_path / "xenscripts.conf"  # the one xenscripts status reads too (test_admin.admin_env)
    conf.write_text(f"metrics_file={prom}   # node_exporter's textfile directory\n")
    daemon = HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock"), env={"XENSCRIPTS_CONF": str(conf)})
    daemon.start()
    try:
        simhost.add_guest(1)
        simhost.add_guest(2, bridge="nosuchbr")
        env = {"XENSCRIPTS_SOCKET": daemon.socket}
        assert simhost.run_hotplug(our_command("vif-bridge"), 1, extra_env=env).returncode == 0
        assert simhost.run_hotplug(our_command("vif-bridge"), 2, extra_env=env).returncode == 1
        assert raw_request(daemon, "none").startswith("R ")  # no usable namespace: refused
        assert daemon.served() == 2
    finally:
        daemon.stop()  # the last write happens on the way out
    parsed = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    totals = {(s.labels["command"], s.labels["outcome"]): s.value for s in parsed["xenscripts_requests"].samples}
    assert totals == {("vif-bridge", "served"): 1, ("vif-bridge", "failed"): 1, ("vif-bridge", "refused"): 1}
    count = [s.value for s in parsed["xenscripts_request_seconds"].samples
             if s.name == "xenscripts_request_seconds_count" and s.labels["command"] == "vif-bridge"]
    assert count == [2]
    assert sorted(p.name for p in prom.parent.iterdir()) == ["xenscripts.prom"]
    seconds = {s.name: s.value for s in parsed["xenscripts_request_seconds"].samples
               if not s.name.endswith("_bucket") and s.labels["command"] == "vif-bridge"}
    cp = xenscripts(simhost, tmp_path, "status", "--json")
    shown = json.loads(cp.stdout)["hotplugd"]["metrics"]
    assert shown["file"] == str(prom)
    assert shown["requests"] == {"vif-bridge": {"served": 1, "failed": 1, "refused": 1}}
    assert shown["mean_ms"]["vif-bridge"] == round(1000 * seconds["xenscripts_request_seconds_sum"] / 2, 1)
    text = xenscripts(simhost, tmp_path, "status").stdout
    assert "  vif-bridge: failed 1, refused 1, served 1; mean " in text, text
