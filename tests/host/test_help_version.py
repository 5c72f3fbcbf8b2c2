"""--help and --version through the installed entry points, as an admin types them."""

from __future__ import annotations

import pytest

from xenscripts import __version__
from xenscripts.commands import COMMANDS
from xensim.ours import our_command


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_vif_bridge_help_and_version_change_nothing(simhost, xenstored, flag):
    g = simhost.add_guest(1)
    cp = simhost.run_hotplug(our_command("vif-bridge"), 1, 0, "online", extra_args=[flag])
    assert cp.returncode == 0, cp.stderr
    text = cp.stdout
    assert ("usage: vif-bridge" in text) if flag == "--help" else (f"(xenscripts) {__version__}" in text)
    link = simhost.link(g.vif)
    assert link.get("master") is None and "UP" not in link["flags"]
    assert xenstored.read(f"{g.backend}/hotplug-status") == ""


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"network"}))
def test_every_entry_point_answers_help(simhost, name):
    cp = simhost.run_hotplug(our_command(name), 1, 0, "--help")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith(f"usage: {name}") and cp.stderr == ""
