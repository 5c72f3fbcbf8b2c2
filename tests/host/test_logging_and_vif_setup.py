"""Logging of our scripts on a simulated host, and vif-setup (the udev entry) dispatching.

Every run goes through ``our_command(...)`` with libxl's argv and environment
(SimHost.run_hotplug), so in daemon mode (XENSCRIPTS_TEST_MODE=daemon) the
daemon writes the logs: the test's syslog socket and the log file are plain
paths, shared with it through the filesystem.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.syslog_reader import syslog_lines
from xensim.host import SimHost
from xensim.ours import our_command

VIF_BRIDGE = our_command("vif-bridge")[-1]
# upstream's text, then our hint (what exists)
NO_BR9 = "Could not find bridge device br9 (bridges in dom0: xenbr0; set bridge=<one of them> in the vif spec)"
# "<stamp> [<level>] <script>: <message>", the script being vif-bridge as invoked (by its path)
FILE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(?P<level>[a-z]+)\] (?P<script>\S+): (?P<msg>.*)$")
FIRST_LINE = "online type_if=vif XENBUS_PATH=backend/vif/1/0"
WRITING_CONNECTED = re.compile(r"^Writing (/local/domain/0/)?backend/vif/1/0/hotplug-status connected to xenstore\.$")
SUCCESS = "Successful vif-bridge online for vif1.0, bridge xenbr0."


# ------------------------------------------------------------------ helpers
def log_lines(host: SimHost) -> list[tuple[str, str, str]]:
    """(level, script, message) of every line of the host's hotplug log file."""
    path = Path(host.log_file)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        m = FILE_LINE.match(line)
        assert m, f"malformed hotplug log line: {line!r}"
        out.append((m["level"], m["script"], m["msg"]))
    return out


def is_vif_bridge(script: str) -> bool:
    return os.path.basename(script) == "vif-bridge"


def packet_text(packet: str) -> str | None:
    """The ``<script>: <message>`` part of a datagram from vif-bridge, else None."""
    m = re.search(r"(\S*vif-bridge): (.*)$", packet)
    return f"{m[1]}: {m[2]}" if m else None


def run_bridge(host: SimHost, domid: int = 1, command: str = "online", **env: str) -> subprocess.CompletedProcess:
    return host.run_hotplug(our_command("vif-bridge"), domid, 0, command, extra_env=env)


def run_setup(host: SimHost, domid: int = 1, command: str = "online", **env: str) -> subprocess.CompletedProcess:
    env.setdefault("XENSCRIPTS_SYSLOG", "")
    return host.run_hotplug(our_command("vif-setup"), domid, 0, command, extra_env=env)


def ok(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert cp.returncode == 0, f"exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp


def assert_plugged(host: SimHost, xs, guest) -> None:
    link = host.link(guest.vif)
    assert link is not None and link.get("master") == "xenbr0" and "UP" in link["flags"], link
    assert xs.read(f"{guest.backend}/hotplug-status") == "connected"
    assert xs.read(f"{guest.backend}/hotplug-error") is None


def assert_untouched(host: SimHost, xs, guest) -> None:
    link = host.link(guest.vif)
    assert link is not None and link.get("master") is None and "UP" not in link["flags"], link
    assert xs.read(f"{guest.backend}/hotplug-status") == ""


def recorder(directory: Path, name: str = "rec", status: int = 3) -> tuple[Path, Path]:
    """A foreign hotplug script that records its arguments and some env, then exits *status*."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}.out"
    script = directory / name
    script.write_text("#!/bin/sh\n"
                      f'for a in "$@"; do printf "arg:%s\\n" "$a"; done > {out}\n'
                      f'printf "env:XENBUS_PATH=%s\\nenv:vif=%s\\n" "$XENBUS_PATH" "$vif" >> {out}\n'
                      f"exit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script, out


def recorded(out: Path) -> tuple[list[str], dict[str, str]]:
    assert out.exists(), "the foreign script did not run"
    args, env = [], {}
    for line in out.read_text().splitlines():
        kind, _, value = line.partition(":")
        if kind == "arg":
            args.append(value)
        else:
            key, _, val = value.partition("=")
            env[key] = val
    return args, env


# ------------------------------------------------------------------ logging: success
def test_online_logs_upstreams_lines_to_syslog_and_none_to_the_file(simhost, xenstored, syslog):
    """Upstream's split: ``log debug`` lines go to syslog; the file gets only stderr's lines."""
    g = simhost.add_guest(1)
    cp = ok(run_bridge(simhost, XENSCRIPTS_SYSLOG=syslog.path))
    assert cp.stderr == ""
    assert_plugged(simhost, xenstored, g)
    assert log_lines(simhost) == []

    packets = syslog.wait_for(lambda p: any(SUCCESS in x for x in p) and any("connected" in x for x in p))
    lines = syslog_lines(packets)
    assert all(is_vif_bridge(script) for _level, script, _ in lines), lines
    assert {level for level, _, _ in lines} <= {"debug", "info"}, lines  # info: the firewall's choice
    messages = [msg for _, _, msg in lines]
    assert messages[0] == FIRST_LINE
    assert any(WRITING_CONNECTED.match(m) for m in messages), messages
    # upstream's order: the body's success line, then hotplug-status connected
    writing = next(i for i, m in enumerate(messages) if WRITING_CONNECTED.match(m))
    assert messages.index(SUCCESS) < writing


# ------------------------------------------------------------------ logging: failure
def test_failure_goes_to_stderr_the_log_file_and_syslog_as_err(simhost, xenstored, syslog):
    g = simhost.add_guest(1, bridge="br9")
    cp = run_bridge(simhost, XENSCRIPTS_SYSLOG=syslog.path)
    assert cp.returncode == 1, cp.stderr
    message = NO_BR9
    assert [line for line in cp.stderr.splitlines() if line] == [f"{VIF_BRIDGE}: {message}"]
    assert xenstored.read(f"{g.backend}/hotplug-error") == message
    assert xenstored.read(f"{g.backend}/hotplug-status") == "error"

    lines = log_lines(simhost)
    assert len(lines) == 1 and lines[0][0] == "err" and is_vif_bridge(lines[0][1]) and lines[0][2] == message

    packets = syslog.wait_for(lambda p: any(p_.startswith("<27>") for p_ in p))
    logged = syslog_lines(packets)
    assert logged[0][2] == FIRST_LINE
    assert [(lv, m) for lv, _, m in logged if lv == "err"] == [("err", message)]
    assert {lv for lv, _, _ in logged} == {"debug", "err"}
    assert SUCCESS not in [m for _, _, m in logged]


def test_debug_lines_never_reach_stderr_even_on_failure(simhost, xenstored):
    simhost.add_guest(1, bridge="br9")
    cp = run_bridge(simhost, XENSCRIPTS_SYSLOG="")
    assert cp.returncode == 1
    assert FIRST_LINE not in cp.stderr
    assert "Writing" not in cp.stderr
    assert NO_BR9 in cp.stderr


def test_log_file_is_appended_across_runs(simhost, xenstored):
    Path(simhost.log_file).write_text("2020-01-01 00:00:00 [err] other-script: an earlier line\n")
    simhost.add_guest(1, bridge="br9")
    run_bridge(simhost, XENSCRIPTS_SYSLOG="")
    run_bridge(simhost, XENSCRIPTS_SYSLOG="")
    lines = log_lines(simhost)
    assert [m for _, _, m in lines] == ["an earlier line"] + [NO_BR9] * 2


# ------------------------------------------------------------------ logging: no syslog
@pytest.mark.parametrize("where", ["/nonexistent/log", "a regular file", "a directory", "the default /dev/log"])
def test_a_missing_or_broken_syslog_does_not_make_the_script_fail(simhost, xenstored, tmp_path, where):
    env: dict[str, str] = {}
    if where == "the default /dev/log":
        if os.path.exists("/dev/log"):
            pytest.skip("this host has a /dev/log")
    elif where == "a regular file":
        (tmp_path / "log").write_text("")
        env["XENSCRIPTS_SYSLOG"] = str(tmp_path / "log")
    elif where == "a directory":
        env["XENSCRIPTS_SYSLOG"] = str(tmp_path)
    else:
        env["XENSCRIPTS_SYSLOG"] = where
    g = simhost.add_guest(1)
    cp = ok(run_bridge(simhost, **env))
    assert cp.stderr == ""
    assert_plugged(simhost, xenstored, g)
    assert log_lines(simhost) == []


def test_a_missing_syslog_does_not_hide_the_error(simhost, xenstored):
    simhost.add_guest(1, bridge="br9")
    cp = run_bridge(simhost, XENSCRIPTS_SYSLOG="/nonexistent/log")
    assert cp.returncode == 1
    assert f"{VIF_BRIDGE}: {NO_BR9}" in cp.stderr.splitlines()
    assert ("err", NO_BR9) in [(lv, m) for lv, _, m in log_lines(simhost)]


# ------------------------------------------------------------------ vif-setup: our vif-bridge
def test_vif_setup_runs_the_script_named_in_the_env(simhost, xenstored, syslog):
    g = simhost.add_guest(1)
    cp = ok(run_setup(simhost, script=VIF_BRIDGE, XENSCRIPTS_SYSLOG=syslog.path))
    assert cp.stderr == ""
    assert_plugged(simhost, xenstored, g)
    assert g.vif in {p["ifname"] for p in simhost.bridge_ports() if p.get("master") == "xenbr0"}
    # the lines are vif-bridge's, as upstream's `exec $script` makes them
    lines = syslog_lines(syslog.wait_for(lambda p: any(SUCCESS in x for x in p)))
    assert lines[0][2] == FIRST_LINE
    assert all(is_vif_bridge(script) for _, script, _ in lines), lines
    assert SUCCESS in [m for _, _, m in lines]


def test_vif_setup_without_script_runs_the_sibling_vif_bridge(simhost, xenstored, syslog):
    g = simhost.add_guest(1)
    cp = ok(run_setup(simhost, script="", XENSCRIPTS_SYSLOG=syslog.path))
    assert cp.stderr == ""
    assert_plugged(simhost, xenstored, g)
    lines = syslog_lines(syslog.wait_for(lambda p: any(SUCCESS in x for x in p)))
    assert all(is_vif_bridge(script) for _, script, _ in lines), lines
    assert SUCCESS in [m for _, _, m in lines]


def test_vif_setup_offline_through_the_sibling_unplugs(simhost, xenstored):
    g = simhost.add_guest(1)
    ok(run_setup(simhost, script=""))
    assert simhost.master_of(g.vif) == "xenbr0"
    ok(run_setup(simhost, command="offline", script=""))
    link = simhost.link(g.vif)
    assert link.get("master") is None and "UP" not in link["flags"]


def test_vif_setup_passes_ours_failure_through(simhost, xenstored):
    g = simhost.add_guest(1, bridge="br9")
    cp = run_setup(simhost, script=VIF_BRIDGE)
    assert cp.returncode == 1
    assert NO_BR9 in cp.stderr
    assert xenstored.read(f"{g.backend}/hotplug-status") == "error"


# ------------------------------------------------------------------ vif-setup: foreign scripts
def test_vif_setup_runs_a_foreign_script_with_the_extra_words_and_passes_its_status(simhost, xenstored, tmp_path):
    g = simhost.add_guest(1)
    rec, out = recorder(tmp_path / "x", status=3)
    cp = run_setup(simhost, script=f"{rec} bridge=xenbr0")
    assert cp.returncode == 3, cp.stderr
    args, env = recorded(out)
    assert args == ["bridge=xenbr0", "online", "type_if=vif"]
    assert env == {"XENBUS_PATH": "backend/vif/1/0", "vif": "vif1.0"}
    # only the foreign script ran: no vif-bridge work, no xenstore writes
    assert_untouched(simhost, xenstored, g)


@pytest.mark.parametrize("status", [0, 1, 3])
def test_vif_setup_passes_the_foreign_exit_status_through(simhost, xenstored, tmp_path, status):
    simhost.add_guest(1)
    rec, out = recorder(tmp_path / "x", status=status)
    cp = run_setup(simhost, command="offline", script=str(rec))
    assert cp.returncode == status, cp.stderr
    assert recorded(out)[0] == ["offline", "type_if=vif"]


def test_vif_setup_runs_a_foreign_script_called_vif_bridge_as_a_program(simhost, xenstored, tmp_path):
    """A non-xenscripts ``vif-bridge`` (upstream's, a site's own) must be exec'd, not run in-process."""
    g = simhost.add_guest(1)
    rec, out = recorder(tmp_path / "scripts", name="vif-bridge", status=3)
    cp = run_setup(simhost, script=str(rec))
    assert cp.returncode == 3, cp.stderr
    assert recorded(out)[0] == ["online", "type_if=vif"]
    assert_untouched(simhost, xenstored, g)


def test_vif_setup_with_a_missing_script_fails(simhost, xenstored, tmp_path):
    g = simhost.add_guest(1)
    cp = run_setup(simhost, script=str(tmp_path / "no-such-script"))
    assert cp.returncode != 0
    assert_untouched(simhost, xenstored, g)
