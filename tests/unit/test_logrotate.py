"""The shipped logrotate snippet is valid and really rotates the hotplug log."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SNIPPET = Path(__file__).resolve().parents[2] / "logrotate" / "xenscripts"


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_snippet_rotates_the_hotplug_log(tmp_path):
    log = tmp_path / "xen-hotplug.log"
    log.write_text("2026-01-01 00:00:00 [err] vif-bridge: Could not find bridge device br9\n")
    text = SNIPPET.read_text()
    assert "/var/log/xen/xen-hotplug.log {" in text
    conf = tmp_path / "xenscripts"
    # same directives, a scratch path, and no owner change (the test may not have group adm)
    conf.write_text(text.replace("/var/log/xen/xen-hotplug.log", str(log)).replace("create 0640 root adm", "create"))
    cp = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(conf)],
                        capture_output=True, text=True, timeout=30, check=False)
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "xen-hotplug.log.1").read_text().endswith("Could not find bridge device br9\n")
    assert log.exists() and log.read_text() == ""
