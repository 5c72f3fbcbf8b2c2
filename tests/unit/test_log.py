"""xenscripts.core.log.RunLog and make_log: syslog daemon.*, the hotplug log file, stderr.

The syslog side is observed through a real unix datagram socket bound by the
test (what /dev/log is); the log file and stderr are read back as text.
No root needed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xenscripts.core.log import DEFAULT_LOG_FILE, SYSLOG_SOCKET, RunLog, make_log

SCRIPT = "/etc/xen/scripts/vif-bridge"
FILE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(?P<level>[a-z]+)\] (?P<text>.*)$")


class Syslog:
    """A bound ``AF_UNIX``/``SOCK_DGRAM`` socket standing in for /dev/log."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def recv(self, timeout: float = 5.0) -> str:
        """The next datagram (fails the test if none comes within *timeout*)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536).decode()
        except TimeoutError:
            pytest.fail(f"no syslog datagram within {timeout}s")

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(65536).decode())
        except BlockingIOError:
            return out
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def syslog() -> Iterator[Syslog]:
    # unix socket paths are limited to 107 bytes, and tmp_path can be longer
    short = tempfile.mkdtemp(prefix="xs-log-")
    s = Syslog(os.path.join(short, "log"))
    try:
        yield s
    finally:
        s.close()
        shutil.rmtree(short, ignore_errors=True)


def file_lines(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = FILE_LINE.match(line)
        assert m, f"malformed log file line: {line!r}"
        out.append((m["level"], m["text"]))
    return out


def make(tmp_path: Path, syslog_path: str | None, stderr=None, **kw) -> RunLog:
    kw.setdefault("log_file", str(tmp_path / "hotplug.log"))
    return RunLog(SCRIPT, stderr, syslog_socket=syslog_path, **kw)


# ------------------------------------------------------------------ syslog
@pytest.mark.parametrize(("method", "pri"), [("debug", 31), ("info", 30), ("error", 27)])
def test_syslog_priority_is_daemon_facility_plus_level(tmp_path, syslog, method, pri):
    log = make(tmp_path, syslog.path, io.StringIO())
    try:
        getattr(log, method)("hello there")
    finally:
        log.close()
    packet = syslog.recv()
    assert packet.startswith(f"<{pri}>"), packet
    assert packet.endswith(f"{SCRIPT}: hello there"), packet
    assert syslog.pending() == []  # exactly one datagram per line


def test_every_line_is_one_datagram_in_order(tmp_path, syslog):
    log = make(tmp_path, syslog.path, io.StringIO())
    try:
        log.debug("online type_if=vif XENBUS_PATH=backend/vif/1/0")
        log.error("Could not find bridge device br9")
        log.debug("Writing backend/vif/1/0/hotplug-status error to xenstore.")
    finally:
        log.close()
    packets = [syslog.recv() for _ in range(3)]
    assert syslog.pending() == []
    assert [p[:4] for p in packets] == ["<31>", "<27>", "<31>"]
    assert packets[0].endswith(f"{SCRIPT}: online type_if=vif XENBUS_PATH=backend/vif/1/0")
    assert packets[1].endswith(f"{SCRIPT}: Could not find bridge device br9")
    assert packets[2].endswith(f"{SCRIPT}: Writing backend/vif/1/0/hotplug-status error to xenstore.")


# ------------------------------------------------------------------ log file
def test_log_file_gets_only_warnings_and_errors_syslog_gets_every_line(tmp_path, syslog):
    """Upstream's split: ``log`` lines go to syslog, only stderr's lines to xen-hotplug.log."""
    log = make(tmp_path, syslog.path, io.StringIO())
    try:
        log.debug("first")
        log.info("second")
        log.warning("third")
        log.error("fourth")
    finally:
        log.close()
    assert file_lines(tmp_path / "hotplug.log") == [
        ("warning", f"{SCRIPT}: third"), ("err", f"{SCRIPT}: fourth")]
    packets = [syslog.recv() for _ in range(4)]
    assert [p[:4] for p in packets] == ["<31>", "<30>", "<28>", "<27>"]
    for packet, word in zip(packets, ("first", "second", "third", "fourth"), strict=True):
        assert packet.endswith(f"{SCRIPT}: {word}")


@pytest.mark.parametrize(("level", "kept"), [("debug", 4), ("info", 3), ("warning", 2), ("error", 1)])
def test_log_level_drops_lower_lines_everywhere(tmp_path, syslog, level, kept):
    log = make(tmp_path, syslog.path, io.StringIO(), level=level)
    for method in (log.debug, log.info, log.warning, log.error):
        method("x")
    log.close()
    assert len(syslog.pending()) == kept
    assert len(file_lines(tmp_path / "hotplug.log")) == min(kept, 2)


def test_a_newline_in_a_value_never_forges_a_line(tmp_path, syslog):
    err = io.StringIO()
    log = make(tmp_path, syslog.path, err)
    log.error("bad bridge 'x\n* * * * * root /tmp/evil\r'")
    log.close()
    assert len((tmp_path / "hotplug.log").read_text().splitlines()) == 1
    assert err.getvalue().count("\n") == 1 and "\\x0a* * * * *" in err.getvalue()
    packet = syslog.recv()
    assert "\n" not in packet and "\r" not in packet


def test_a_full_disk_under_the_log_file_changes_nothing(syslog):
    err = io.StringIO()
    log = RunLog(SCRIPT, err, log_file="/dev/full", syslog_socket=syslog.path)
    log.debug("d")
    log.error("e")
    log.close()  # must not raise
    assert err.getvalue() == f"{SCRIPT}: e\n"
    assert [p[:4] for p in syslog.pending()] == ["<31>", "<27>"]


def test_log_file_is_appended_to_not_truncated(tmp_path):
    path = tmp_path / "hotplug.log"
    path.write_text("an earlier script's line\n")
    for n in (1, 2):
        log = make(tmp_path, "")
        log.error(f"run {n}")
        log.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "an earlier script's line"
    assert [FILE_LINE.match(x)["text"] for x in lines[1:]] == [f"{SCRIPT}: run 1", f"{SCRIPT}: run 2"]


def test_log_file_lines_are_on_disk_before_close(tmp_path):
    log = make(tmp_path, "")
    try:
        log.error("flushed")
        assert file_lines(tmp_path / "hotplug.log") == [("err", f"{SCRIPT}: flushed")]
    finally:
        log.close()


def test_no_log_file_configured_writes_none(tmp_path, syslog):
    log = make(tmp_path, syslog.path, io.StringIO(), log_file="")
    try:
        log.debug("only syslog")
    finally:
        log.close()
    assert syslog.recv().endswith(f"{SCRIPT}: only syslog")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ stderr
def test_stderr_receives_only_errors(tmp_path, syslog):
    err = io.StringIO()
    log = make(tmp_path, syslog.path, err)
    try:
        log.debug("a debug line")
        log.info("an info line")
        log.error("Could not find bridge device br9")
        log.debug("another debug line")
    finally:
        log.close()
    assert err.getvalue() == f"{SCRIPT}: Could not find bridge device br9\n"


def test_lines_are_kept_for_the_caller(tmp_path):
    log = make(tmp_path, "", io.StringIO())
    try:
        log.debug("d")
        log.error("e")
    finally:
        log.close()
    assert log.lines == [("debug", "d"), ("err", "e")]


# ------------------------------------------------------------------ never fails
def _all_levels(log: RunLog) -> None:
    log.debug("debug line")
    log.info("info line")
    log.error("error line")
    log.close()


def test_missing_syslog_socket_is_fine(tmp_path):
    err = io.StringIO()
    _all_levels(make(tmp_path, str(tmp_path / "no-such-dir" / "log"), err))
    assert [level for level, _ in file_lines(tmp_path / "hotplug.log")] == ["err"]
    assert err.getvalue() == f"{SCRIPT}: error line\n"


def test_syslog_path_that_is_a_regular_file_is_fine(tmp_path):
    not_a_socket = tmp_path / "log"
    not_a_socket.write_text("")
    _all_levels(make(tmp_path, str(not_a_socket), io.StringIO()))
    assert len(file_lines(tmp_path / "hotplug.log")) == 1


def test_syslog_path_that_is_a_stream_socket_is_fine(tmp_path):
    short = tempfile.mkdtemp(prefix="xs-log-")
    path = os.path.join(short, "log")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        _all_levels(make(tmp_path, path, io.StringIO()))
    finally:
        listener.close()
        shutil.rmtree(short, ignore_errors=True)
    assert len(file_lines(tmp_path / "hotplug.log")) == 1


def test_empty_syslog_path_disables_syslog(tmp_path, syslog):
    _all_levels(make(tmp_path, "", io.StringIO()))
    assert syslog.pending() == []
    assert len(file_lines(tmp_path / "hotplug.log")) == 1


def test_unbound_syslog_socket_after_a_receiver_went_away_is_fine(tmp_path):
    short = tempfile.mkdtemp(prefix="xs-log-")
    try:
        s = Syslog(os.path.join(short, "log"))
        s.close()  # the path stays, nobody listens: ECONNREFUSED
        assert os.path.exists(s.path)
        _all_levels(make(tmp_path, s.path, io.StringIO()))
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert len(file_lines(tmp_path / "hotplug.log")) == 1


@pytest.mark.parametrize("where", ["a directory", "under a missing directory"])
def test_unwritable_log_file_is_fine_and_syslog_still_gets_the_lines(tmp_path, syslog, where):
    if where == "a directory":
        target = tmp_path / "dir"
        target.mkdir()
    else:
        target = tmp_path / "missing" / "hotplug.log"
    err = io.StringIO()
    _all_levels(make(tmp_path, syslog.path, err, log_file=str(target)))
    assert [p[:4] for p in (syslog.recv(), syslog.recv(), syslog.recv())] == ["<31>", "<30>", "<27>"]
    assert err.getvalue() == f"{SCRIPT}: error line\n"
    assert not (tmp_path / "missing").exists()
    if where == "a directory":
        assert list(target.iterdir()) == []


def test_stderr_none_is_fine(tmp_path, syslog):
    _all_levels(make(tmp_path, syslog.path, None))
    assert [level for level, _ in file_lines(tmp_path / "hotplug.log")] == ["err"]
    assert [p[:4] for p in (syslog.recv(), syslog.recv(), syslog.recv())] == ["<31>", "<30>", "<27>"]


class BrokenStream(io.TextIOBase):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_or_closed_stderr_is_fine(tmp_path):
    closed = io.StringIO()
    closed.close()
    for stream in (BrokenStream(), closed):
        log = make(tmp_path, "", stream)
        log.error("still logged")
        log.close()
    assert file_lines(tmp_path / "hotplug.log") == [("err", f"{SCRIPT}: still logged")] * 2


def test_undecodable_argument_bytes_are_fine(tmp_path, syslog):
    """argv with non-UTF-8 bytes arrives surrogate-escaped (os.fsdecode); logging it must not raise."""
    err = io.StringIO()
    bad = os.fsdecode(b"bridge=xen\xffbr")
    log = make(tmp_path, syslog.path, err)
    try:
        log.debug(f"online {bad}")
        log.error(f"bad {bad}")
    finally:
        log.close()
    assert syslog.recv().startswith("<31>")
    assert syslog.recv().startswith("<27>")
    assert [level for level, _ in file_lines(tmp_path / "hotplug.log")] == ["err"]
    assert err.getvalue().startswith(f"{SCRIPT}: bad bridge=xen")


# ------------------------------------------------------------------ make_log
def test_make_log_takes_the_knobs_from_the_env_dict_given(tmp_path, monkeypatch):
    monkeypatch.setenv("XENSCRIPTS_LOG_FILE", "/process/env/must/not/win")
    monkeypatch.setenv("XENSCRIPTS_SYSLOG", "/process/env/syslog")
    err = io.StringIO()
    env = {"XENSCRIPTS_LOG_FILE": str(tmp_path / "x.log"), "XENSCRIPTS_SYSLOG": str(tmp_path / "sock")}
    log = make_log([SCRIPT, "online"], env, err)
    assert (log.script, log.stderr, log.log_file, log.syslog_socket) == (
        SCRIPT, err, str(tmp_path / "x.log"), str(tmp_path / "sock"))


def test_make_log_defaults_without_the_knobs(monkeypatch):
    monkeypatch.setenv("XENSCRIPTS_LOG_FILE", "/process/env/must/not/win")
    monkeypatch.setenv("XENSCRIPTS_SYSLOG", "/process/env/syslog")
    log = make_log([SCRIPT], {}, None)
    assert log.log_file == DEFAULT_LOG_FILE == "/var/log/xen/xen-hotplug.log"
    assert log.syslog_socket == SYSLOG_SOCKET == "/dev/log"


def test_make_log_empty_syslog_disables_it(tmp_path, syslog):
    env = {"XENSCRIPTS_LOG_FILE": str(tmp_path / "x.log"), "XENSCRIPTS_SYSLOG": ""}
    log = make_log([SCRIPT], env, None)
    log.error("not to syslog")
    log.close()
    assert log.syslog_socket == ""
    assert syslog.pending() == []
    assert file_lines(tmp_path / "x.log") == [("err", f"{SCRIPT}: not to syslog")]


def test_make_log_really_sends_to_the_env_socket(tmp_path, syslog):
    env = {"XENSCRIPTS_LOG_FILE": str(tmp_path / "x.log"), "XENSCRIPTS_SYSLOG": syslog.path}
    log = make_log([SCRIPT, "online"], env, io.StringIO())
    log.error("boom")
    log.close()
    packet = syslog.recv()
    assert packet.startswith("<27>") and packet.endswith(f"{SCRIPT}: boom")
    assert file_lines(tmp_path / "x.log") == [("err", f"{SCRIPT}: boom")]


def test_make_log_without_argv_still_names_the_script():
    log = make_log([], {"XENSCRIPTS_LOG_FILE": "", "XENSCRIPTS_SYSLOG": ""}, None)
    assert log.script == "xenscripts"


def test_a_stalled_syslog_reader_does_not_block_the_run(tmp_path, syslog):
    log = make(tmp_path, syslog.path, io.StringIO())
    done = threading.Event()

    def many_lines() -> None:
        for n in range(100):
            log.warning(f"line {n}")
        done.set()

    worker = threading.Thread(target=many_lines, daemon=True)
    worker.start()
    try:
        finished = done.wait(5.0)
    finally:
        syslog.close()  # wakes a blocked sender (it gets an error and carries on)
        worker.join(5.0)
        log.close()
    assert not worker.is_alive()
    assert finished, "logging blocked on a syslog socket nobody reads"
    assert len(file_lines(tmp_path / "hotplug.log")) == 100


def test_make_log_reads_file_and_level_from_the_config_file(tmp_path):
    conf = tmp_path / "xenscripts.conf"
    conf.write_text(f"log_file={tmp_path}/conf.log\nlog_level=warning\n")
    log = make_log([SCRIPT], {"XENSCRIPTS_CONF": str(conf), "XENSCRIPTS_SYSLOG": ""}, None)
    log.info("dropped")
    log.error("kept")
    log.close()
    assert log.log_file == f"{tmp_path}/conf.log"
    assert file_lines(tmp_path / "conf.log") == [("err", f"{SCRIPT}: kept")]
    conf.write_text("log_level=loud\n")  # a bad file: defaults, the frame reports the line
    assert make_log([SCRIPT], {"XENSCRIPTS_CONF": str(conf)}, None).log_file == DEFAULT_LOG_FILE


def test_where_journald_runs_a_line_carries_structured_fields_and_a_message_id(tmp_path):
    """A fake journal socket reads what journald would: KEY=value lines, one datagram per line."""
    import socket as socketmod

    from xenscripts.core.log import EVENTS, RunLog

    path = str(tmp_path / "journal.sock")
    with socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_DGRAM) as server:
        server.bind(path)
        log = RunLog(script="vif-bridge", stderr=None, log_file=None, syslog_socket=None, journal_socket=path)
        log.fields.update(VIF="vif3.0", DOMID="3", DEVID="0")
        log.debug("Successful vif-bridge online for vif3.0, bridge xenbr0.")
        log.warning("bridged IPv4 does not reach iptables")
        log.error("Could not find bridge device xenbr9\nFORGED=1")
        log.debug("Writing x to xenstore.")
        entries = [dict(line.split("=", 1) for line in server.recv(65536).decode().splitlines()) for _ in range(4)]
    assert [e.get("MESSAGE_ID") for e in entries] == [EVENTS["success"], EVENTS["warning"], EVENTS["failure"], None]
    assert all(e["XENSCRIPTS_COMMAND"] == "vif-bridge" and e["VIF"] == "vif3.0" and e["DOMID"] == "3"
               and e["SYSLOG_IDENTIFIER"] == "xenscripts" for e in entries)
    assert [e["PRIORITY"] for e in entries] == ["7", "4", "3", "7"]
    assert entries[2]["MESSAGE"] == "vif-bridge: Could not find bridge device xenbr9\\x0aFORGED=1"
    assert "FORGED" not in entries[2]  # a value cannot add a field
    assert len(set(EVENTS.values())) == len(EVENTS)
