"""The network-script frame: commands, flags, settings precedence, errors."""

from __future__ import annotations

import io

import pytest

from tests.fixtures import opened_files  # noqa: F401
from xenscripts.core.errors import HotplugError
from xenscripts.frame.network import run_network_script


def _run(argv, env=None, body=None, tmp_path=None):
    err, out, seen = io.StringIO(), io.StringIO(), []
    env = {"XENSCRIPTS_LOG_FILE": "", "XENSCRIPTS_SYSLOG": "", **(env or {})}
    status = run_network_script(argv, env, err, out, ("netdev", "antispoof"), body or seen.append)
    return status, err.getvalue(), out.getvalue(), seen


@pytest.mark.parametrize("argv", [["network-x"], ["network-x", "restart"], ["network-x", "netdev=eth0"]])
def test_unknown_command_is_upstreams_two_lines(argv):
    status, err, _, seen = _run(argv)
    assert status == 1 and not seen
    assert err == f"Unknown command: {argv[1] if len(argv) > 1 and '=' not in argv[1] else ''}\n" \
                  "Valid commands are: start, stop, status\n"


def test_unknown_flag_is_refused():
    status, err, _, seen = _run(["network-x", "start", "--force"])
    assert status == 1 and not seen and "--force" in err


def test_precedence_conf_env_argv(tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("antispoof=yes\n")
    env = {"XENSCRIPTS_CONF": str(conf), "netdev": "eth1"}
    status, _, _, seen = _run(["network-x", "status", "--json", "netdev=eth2"], env)
    assert status == 0
    assert seen[0].variables == {"antispoof": "yes", "netdev": "eth2"}
    assert seen[0].json and not seen[0].dry_run and seen[0].command == "status"


def test_bad_config_line_is_an_error(tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("antispoof=maybe\n")
    status, err, _, seen = _run(["network-x", "start"], {"XENSCRIPTS_CONF": str(conf)})
    assert status == 1 and not seen and "line 1" in err and "maybe" in err


def test_the_config_file_is_read_once_per_run(tmp_path, opened_files):  # noqa: F811
    conf = tmp_path / "x.conf"
    conf.write_text("antispoof=yes\nlog_level=info\n")
    opened_files.clear()  # the write above
    status, _, _, seen = _run(["network-x", "status"], {"XENSCRIPTS_CONF": str(conf)})
    assert status == 0 and seen[0].conf == {"antispoof": "yes", "log_level": "info"}
    assert opened_files.count(str(conf)) == 1


def test_errors_are_reported_not_raised():
    def fails(run):
        raise HotplugError("no such netdev eth9")

    def bug(run):
        raise KeyError("x")

    assert _run(["network-x", "start"], body=fails)[:2] == (1, "network-x: no such netdev eth9\n")
    status, err, _, _ = _run(["network-x", "start"], body=bug)
    assert status == 1 and "internal error" in err and "KeyError" in err
