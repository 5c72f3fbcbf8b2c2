"""The boot unit for network-bridge, and its ``network`` alias."""

from __future__ import annotations

import configparser
import io
from pathlib import Path

from xenscripts.commands import run_command

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "xenscripts-network.service"


def test_unit_is_a_oneshot_before_the_guests():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    assert unit["Service"]["Type"] == "oneshot" and unit["Service"]["RemainAfterExit"] == "yes"
    assert unit["Service"]["ExecStart"].endswith("network-bridge start")
    assert unit["Service"]["ExecStop"].endswith("network-bridge stop")
    assert "xendomains.service" in unit["Unit"]["Before"]
    assert "network-online.target" in unit["Unit"]["After"]


def test_network_is_network_bridge():
    err = io.StringIO()
    assert run_command("network", ["network", "restart"], {"XENSCRIPTS_LOG_FILE": "", "XENSCRIPTS_SYSLOG": ""},
                       err) == 1
    assert err.getvalue() == "Unknown command: restart\nValid commands are: start, stop, status\n"
