"""The vif script frame (xenscripts.frame.vif) through vif-bridge's run(), in-process.

Only paths that end before any netlink work: the xenstore side is the
simulated xenstored, observed through its own store and write log.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.fixtures import opened_files, xenstored  # noqa: F401
from xenscripts.commands.vif_bridge import run
from xensim.xenstored import XenstoreServer

BE = "/local/domain/0/backend/vif/1/0"
SCRIPT = "/etc/xen/scripts/vif-bridge"


@pytest.fixture
def backend(xenstored: XenstoreServer) -> XenstoreServer:  # noqa: F811
    """A libxl-shaped backend directory for guest 1, nic 0, without a bridge key."""
    for key, value in {"frontend": "/local/domain/1/device/vif/0", "frontend-id": "1", "online": "1",
                       "state": "2", "script": SCRIPT, "mac": "00:16:3e:00:01:00", "handle": "0",
                       "type": "vif", "hotplug-status": ""}.items():
        xenstored.write(f"{BE}/{key}", value)
    return xenstored


def env_for(xs: XenstoreServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "XENSTORED_PATH": xs.path,
        "XENBUS_PATH": "backend/vif/1/0",
        "vif": "vif1.0",
        "XENSCRIPTS_LOG_FILE": str(tmp_path / "hotplug.log"),
        "XENSCRIPTS_SYSLOG": "",
        "XENSCRIPTS_LOCK_DIR": str(tmp_path / "locks"),
        "XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts"),
    }
    env.update(extra)
    return env


def call(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    err = io.StringIO()
    status = run([SCRIPT, *args], env, stderr=err)
    return status, err.getvalue()


@pytest.mark.parametrize(("args", "word"), [
    (["start", "type_if=vif"], "start"),
    (["type_if=vif", "plug"], "plug"),
    (["ONLINE"], "ONLINE"),
    (["type_if=vif"], ""),
])
def test_invalid_command(backend, tmp_path, args, word):
    status, err = call(args, env_for(backend, tmp_path))
    assert status == 1
    assert f"Invalid command: {word} (expected one of online, offline, add, remove)\n" in err
    assert backend.read(f"{BE}/hotplug-status") != "connected"
    assert f"Invalid command: {word}" in (tmp_path / "hotplug.log").read_text()


@pytest.mark.parametrize("args", [
    ["online", "type_if=tap"],
    ["offline", "type_if=tap"],
    ["add", "type_if=vif"],
    ["remove", "type_if=vif"],
    ["add"],                        # type_if defaults to vif
    ["type_if=tap", "online"],
])
def test_type_mismatch_is_a_silent_no_op(backend, tmp_path, args):
    before = backend.ls(BE)
    # the bad bridge would make any real run fail: exit 0 proves nothing ran
    status, err = call([*args, "bridge=no/such"], env_for(backend, tmp_path, INTERFACE="vif1.0-emu"))
    assert status == 0, err
    assert err == ""
    assert backend.writes == []
    assert backend.ls(BE) == before


@pytest.mark.parametrize("type_if", ["foo", "VIF", "tap0"])
def test_unknown_interface_type(backend, tmp_path, type_if):
    status, err = call(["online", f"type_if={type_if}"], env_for(backend, tmp_path))
    assert status == 1
    assert f"unknown interface type {type_if}" in err


def test_unknown_interface_type_from_environment(backend, tmp_path):
    status, err = call(["online"], env_for(backend, tmp_path, type_if="bogus"))
    assert status == 1
    assert "unknown interface type bogus" in err


def test_udev_call_with_disable_udev_exits_untouched(backend, tmp_path):
    backend.write("/local/domain/0/libxl/disable_udev", "")
    before = backend.ls("/")
    marker = tmp_path / "marker"
    status, err = call(["online", "type_if=vif", f"bridge=$(touch {marker})"],
                       env_for(backend, tmp_path, UDEV_CALL="1"))
    assert status == 0, err
    assert err == ""
    assert backend.writes == []
    assert backend.ls("/") == before
    assert not marker.exists()


def test_udev_call_without_disable_udev_runs(backend, tmp_path):
    # the gate depends on the key: without it the run goes on (and fails on the bad bridge)
    status, err = call(["online", "type_if=vif", "bridge=no/such"], env_for(backend, tmp_path, UDEV_CALL="1"))
    assert status == 1
    assert "no/such" in err
    assert backend.read(f"{BE}/hotplug-status") == "error"


@pytest.mark.parametrize("value", [
    "$(touch {marker})",
    "'$(touch {marker})'",
    "`touch {marker}`",
    "x;touch {marker}",
])
def test_injected_bridge_name_is_refused_and_not_run(backend, tmp_path, value):
    marker = tmp_path / "marker"
    arg = "bridge=" + value.format(marker=marker)
    literal = value.strip("'").format(marker=marker)
    status, err = call(["online", "type_if=vif", arg], env_for(backend, tmp_path))
    assert status == 1
    error = backend.read(f"{BE}/hotplug-error")
    assert error is not None and literal in error, error
    assert backend.read(f"{BE}/hotplug-status") == "error"
    assert literal in err
    assert not marker.exists()
    assert (f"{BE}/hotplug-status", "connected") not in backend.writes


def test_the_config_file_is_read_once_per_run(backend, tmp_path, opened_files):  # noqa: F811
    """Log, inputs, firewall settings and script_dir all come from one read (the body runs: it reads the bridge)."""
    conf = tmp_path / "xenscripts.conf"
    conf.write_text("antispoof=no\nfirewall=none\n")
    opened_files.clear()  # the write above
    status, err = call(["online", "type_if=vif", "bridge=x;y"], env_for(backend, tmp_path, XENSCRIPTS_CONF=str(conf)))
    assert status == 1 and "x;y" in err  # refused in the body, after the frame built the run
    assert opened_files.count(str(conf)) == 1


def test_a_bad_config_file_is_reported_with_its_line(backend, tmp_path):
    conf = tmp_path / "xenscripts.conf"
    conf.write_text("antispoof=maybe\n")
    status, err = call(["online", "type_if=vif"], env_for(backend, tmp_path, XENSCRIPTS_CONF=str(conf)))
    assert status == 1 and "line 1" in err and "maybe" in err
    assert "line 1" in (backend.read(f"{BE}/hotplug-error") or "")
    assert "line 1" in (tmp_path / "hotplug.log").read_text()  # logged with the defaults' log settings


def test_injected_bridge_name_in_environment_is_refused(backend, tmp_path):
    marker = tmp_path / "marker"
    status, err = call(["online"], env_for(backend, tmp_path, bridge=f"$(touch {marker})"))
    assert status == 1
    assert f"$(touch {marker})" in (backend.read(f"{BE}/hotplug-error") or "")
    assert f"$(touch {marker})" in err
    assert not marker.exists()


def test_bad_xenbus_path_is_fatal_without_writes(backend, tmp_path):
    status, err = call(["online"], env_for(backend, tmp_path, XENBUS_PATH="backend/vif/1/../../0"))
    assert status == 1
    assert "Invalid XENBUS_PATH" in err
    assert backend.writes == []


def test_missing_vif_is_fatal_and_reported(backend, tmp_path):
    env = env_for(backend, tmp_path)
    del env["vif"]
    status, err = call(["online"], env)
    assert status == 1
    assert "vif is not set" in err
    assert backend.read(f"{BE}/hotplug-error") == "vif is not set"
    assert backend.read(f"{BE}/hotplug-status") == "error"


def test_missing_xenbus_path_is_fatal_without_writes(backend, tmp_path):
    env = env_for(backend, tmp_path)
    del env["XENBUS_PATH"]
    status, err = call(["online"], env)
    assert status == 1
    assert "XENBUS_PATH is not set" in err
    assert backend.writes == []


def test_bad_backend_vifname_is_reported(backend, tmp_path):
    backend.write(f"{BE}/vifname", "web/1")
    status, err = call(["online"], env_for(backend, tmp_path))
    assert status == 1
    assert "'web/1'" in (backend.read(f"{BE}/hotplug-error") or "")
    assert "'web/1'" in err
    assert backend.read(f"{BE}/hotplug-status") == "error"


def test_no_xenstored_is_a_clear_error(tmp_path):
    env = {"XENSTORED_PATH": str(tmp_path / "nothing.sock"), "XENBUS_PATH": "backend/vif/1/0", "vif": "vif1.0",
           "XENSCRIPTS_LOG_FILE": str(tmp_path / "hotplug.log"), "XENSCRIPTS_SYSLOG": ""}
    status, err = call(["online", "type_if=vif"], env)
    assert status == 1
    assert "Cannot connect to xenstore" in err
    assert "internal error" not in err
