"""The error catalogue: every message the package raises or logs as an error, read from its source.

A message never shows a caught exception as a Python repr (``{e!r}``), and a
bug is reported in words with how to report it (``core.errors.internal_error``).
Then the walk: each message admins met and could not act on, raised as the
code raises it, keeps upstream's text first (where there is one) and says
what exists instead and what to do. (``Invalid command`` and network-*'s
``Unknown command``: tests/unit/test_run_frame.py, test_netscript.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from xenscripts.admin.install import Actions, ensure_venv
from xenscripts.admin.layout import Paths
from xenscripts.commands import vif_route
from xenscripts.commands.vif_bridge import find_bridge
from xenscripts.commands.vif_nat import update_dhcp_entry
from xenscripts.core.errors import BUG_REPORT, HotplugError, describe, internal_error
from xenscripts.dhcp import isc

PACKAGE = Path(__file__).resolve().parents[2] / "xenscripts"
ERROR_CALLS = {"error", "warning", "fatal", "say"}  # log.error(...), log.warning(...), self.say(...)


def _messages() -> list[tuple[str, int, ast.JoinedStr, set[str]]]:
    """Each f-string raised as an exception or logged as an error, with the names its handlers caught."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name):
            for node in ast.walk(handler):
                call = node.exc if isinstance(node, ast.Raise) else node
                if not isinstance(call, ast.Call):
                    continue
                func = call.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if not (isinstance(node, ast.Raise) or name in ERROR_CALLS):
                    continue
                for arg in call.args:
                    if isinstance(arg, ast.JoinedStr):
                        found.append((path.relative_to(PACKAGE.parent).as_posix(), arg.lineno, arg, {handler.name}))
    return found


def test_the_catalogue_is_read():
    assert len(_messages()) >= 30  # every handler that reports: a walk that finds none would pass anything


def test_no_message_shows_a_caught_exception_as_a_repr():
    bad = [f"{path}:{line}" for path, line, text, caught in _messages()
           for part in text.values
           if isinstance(part, ast.FormattedValue) and part.conversion == ord("r")
           and isinstance(part.value, ast.Name) and part.value.id in caught]
    assert not bad, f"a caught exception shown as a repr (use str(e) or core.errors.describe): {bad}"


def test_an_internal_error_is_in_words_and_says_how_to_report_it():
    message = internal_error("vif-bridge online", KeyError("mac"))
    assert message == f"vif-bridge online failed; internal error: KeyError: no mac; {BUG_REPORT}"
    assert "xenscripts status --json" in message
    assert describe(FileNotFoundError(2, "No such file or directory", "/x")) == \
        "FileNotFoundError: No such file or directory (/x)"
    assert describe(RuntimeError()) == "RuntimeError"


# ---- the walk: each message an admin met and could not act on, as it reads now (upstream's text first, if any).
def _stub(**fields) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def test_vif_route_not_up_names_the_defaulted_netdev_and_xl_s_gatewaydev():
    run = _stub(ctx=_stub(script="/etc/xen/scripts/vif-route", variables={}))
    with pytest.raises(HotplugError) as e:
        vif_route.dom0_address(run, _stub(), "eth0", None)  # netdev defaulted to eth0, which does not exist
    text = str(e.value)
    assert text.startswith("eth0 is not up.  Bring it up or specify another interface with  netdev=<if> "
                           "as a parameter to /etc/xen/scripts/vif-route.")  # upstream's, double blanks included
    assert "it does not exist" in text and "gatewaydev=<if>" in text and "vif.default.gatewaydev" in text


def test_a_missing_bridge_lists_the_bridges_there_are():
    net = _stub(link=lambda name: None, first_bridge=lambda: "xenbr0", bridge_names=lambda: ["xenbr0", "xenbr1"])
    with pytest.raises(HotplugError) as e:
        find_bridge(net, "xenbr9")
    assert str(e.value).startswith("Could not find bridge device xenbr9 (")
    assert "bridges in dom0: xenbr0, xenbr1; set bridge=<one of them>" in str(e.value)
    none = _stub(link=lambda name: None, first_bridge=lambda: None, bridge_names=list)
    with pytest.raises(HotplugError) as e:
        find_bridge(none, "xenbr9")
    assert "dom0 has no bridge: create one with 'network-bridge start" in str(e.value)


def test_vif_nat_dhcp_without_a_mac_says_why_and_what_to_do():
    run = _stub(ctx=_stub(mac=None, key=lambda name: f"/local/domain/0/backend/vif/3/0/{name}"))
    with pytest.raises(HotplugError) as e:
        update_dhcp_entry(run, None, None, "yes", True)
    assert str(e.value) == ("xenstore-read /local/domain/0/backend/vif/3/0/mac failed. (dhcp=yes writes a host "
                            "entry by the guest's MAC: give the vif a mac= in its xl spec, or set dhcp=no)")


def test_dhcpd_not_found_names_every_path_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(isc, "CONF_FILES", (str(tmp_path / "dhcpd.conf"), str(tmp_path / "dhcp3/dhcpd.conf")))
    monkeypatch.setattr(isc, "INIT_FILES", (str(tmp_path / "isc-dhcp-server"),))
    for call, tried in ((lambda: isc.conf_file({}, {}),
                         f"no configuration: tried {tmp_path}/dhcpd.conf, {tmp_path}/dhcp3/dhcpd.conf"),
                        (lambda: isc.conf_file({}, {"dhcpd_conf": "/nonexistent/d.conf"}),
                         "dhcpd_conf=/nonexistent/d.conf does not exist"),
                        (lambda: isc.restart_command({}, {}), f"no init script: tried {tmp_path}/isc-dhcp-server")):
        with pytest.raises(HotplugError) as e:
            call()
        assert str(e.value).startswith(f"Failed to find dhcpd configuration or init file. ({tried}; ")
        assert "install isc-dhcp-server" in str(e.value) and "dhcp=yes for dnsmasq" in str(e.value)


def test_a_failed_pip_says_where_its_output_is_and_the_usual_causes(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("version = 3.11.2\n")
    (venv / "bin" / "pip").write_text("#!/bin/sh\necho 'ERROR: No matching distribution found for pyroute2' >&2\n"
                                      "exit 1\n")
    (venv / "bin" / "pip").chmod(0o755)
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho 3.11\n")  # the host's Python, as python_version asks it
    python.chmod(0o755)
    with pytest.raises(OSError) as e:
        ensure_venv(Paths(prefix=str(tmp_path)), str(python), Actions(lambda line: None, dry_run=False))
    text = str(e.value)
    assert f"{venv}/bin/pip install" in text and "failed with status 1" in text
    assert "pip's own messages are above" in text and "--wheelhouse DIR" in text and "python3-dev" in text
