"""The thin client stays standard library: its one hand-off into the package is a module named by string."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xenscripts.commands import inprocess
from xenscripts.entry import client

ROOT = Path(__file__).resolve().parents[2]


def test_the_hand_off_names_a_module_with_what_the_client_calls():
    assert client.in_process() is inprocess
    for name in ("run", "report", "vif_setup_target"):
        assert callable(getattr(inprocess, name))


def test_importing_the_client_loads_only_standard_library_modules():
    code = ("import sys; before = set(sys.modules); sys.path.insert(0, sys.argv[1]); "
            "import xenscripts.entry.client; print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)], capture_output=True,
                            text=True, check=True).stdout.split()
    ours = {m for m in loaded if m.startswith("xenscripts")}
    assert ours == {"xenscripts", "xenscripts.entry", "xenscripts.entry.client", "xenscripts.entry.wire"}
    assert not {"typing", "socket", "json", "pyroute2"} & set(loaded)  # `_socket` only; no typing at run time


def test_vif_setup_in_process_never_runs_a_foreign_script(tmp_path):
    """The entry point exec's a foreign ``$script`` itself; the command module refuses it and runs nothing."""
    import io

    from xenscripts.commands import run_command

    marker = tmp_path / "ran"
    foreign = tmp_path / "my-vif-script"
    foreign.write_text(f"#!/bin/sh\ntouch {marker}\n")
    foreign.chmod(0o755)
    err = io.StringIO()
    status = run_command("vif-setup", [str(tmp_path / "vif-setup"), "online"], {"script": str(foreign)}, err)
    assert status == 1 and "is not one of ours" in err.getvalue()
    assert not marker.exists()
