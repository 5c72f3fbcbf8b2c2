"""--help/-h and --version on every entry point: usage or version on stdout, exit 0, nothing run."""

from __future__ import annotations

import io

import pytest

from xenscripts import __version__
from xenscripts.commands import COMMANDS, run_command


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_runs_nothing(name, flag):
    out, err = io.StringIO(), io.StringIO()
    # an online with no XENBUS_PATH would fail: --help must win before anything runs
    assert run_command(name, [f"/etc/xen/scripts/{name}", "online", flag], {}, err, out) == 0
    assert out.getvalue().startswith("usage: ") and name in out.getvalue()
    assert err.getvalue() == ""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_version_prints_the_version(name):
    out = io.StringIO()
    assert run_command(name, [name, "--version"], {}, io.StringIO(), out) == 0
    assert out.getvalue() == f"{name} (xenscripts) {__version__}\n"


def test_without_stdout_the_text_goes_to_stderr():
    err = io.StringIO()
    assert run_command("vif-bridge", ["vif-bridge", "--version"], {}, err, None) == 0
    assert __version__ in err.getvalue()


def test_unknown_name_still_fails():
    err = io.StringIO()
    assert run_command("vif-custom", ["vif-custom", "--help"], {}, err, io.StringIO()) == 1
