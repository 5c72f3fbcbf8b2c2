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
