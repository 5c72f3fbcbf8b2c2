"""vif-post.d hooks: what they see, failures, and hung hooks killed with their children."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xenscripts.core.errors import HotplugError
from xenscripts.xen.hooks import HOOK_PATH, call_hooks
from xensim.poll import wait_until


def _hook(tmp_path: Path, body: str, name: str = "50-test.hook") -> Path:
    hooks = tmp_path / "vif-post.d"
    hooks.mkdir(exist_ok=True)
    hook = hooks / name
    hook.write_text(body)
    hook.chmod(0o755)
    return hook


def test_hook_sees_the_documented_variables_and_a_fixed_path(tmp_path):
    out = tmp_path / "env.out"
    _hook(tmp_path, f"env > {out}\n")
    evil = tmp_path / "evil.sh"
    evil.write_text(f"touch {tmp_path}/evil-ran\n")
    call_hooks(str(tmp_path), "vif", "post", {
        "command": "online", "dev": "vif1.0", "bridge": "xenbr0", "ip": "192.0.2.1", "XENBUS_PATH": "backend/vif/1/0",
        "BASH_ENV": str(evil), "PATH": str(tmp_path), "LD_PRELOAD": "/x.so", "SHELLOPTS": "xtrace"})
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert seen["command"] == "online" and seen["dev"] == "vif1.0" and seen["bridge"] == "xenbr0"
    assert seen["XENBUS_PATH"] == "backend/vif/1/0" and seen["PATH"] == HOOK_PATH
    assert "BASH_ENV" not in seen and "LD_PRELOAD" not in seen
    assert not (tmp_path / "evil-ran").exists()


def test_failing_hook_is_fatal_and_names_itself(tmp_path):
    hook = _hook(tmp_path, "echo 'no route' >&2\nexit 3\n")
    with pytest.raises(HotplugError, match=rf"hook {hook} failed with status 3: no route"):
        call_hooks(str(tmp_path), "vif", "post", {})


def test_hung_hook_is_killed_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    hook = _hook(tmp_path, f"sleep 1000 & echo $! > {pids}\nsleep 1000\n")
    with pytest.raises(HotplugError, match=rf"hook {hook} did not finish within 0.5 s; killed it"):
        call_hooks(str(tmp_path), "vif", "post", {}, timeout=0.5)
    child = int(pids.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{child}/stat") as f:  # a zombie awaiting init is gone too
            return f.read().split(") ")[1].startswith("Z")

    assert wait_until(gone, timeout=5), f"the hook's child {child} is still running"


def test_hooks_not_executable_or_not_named_hook_are_skipped(tmp_path):
    _hook(tmp_path, "exit 1\n", name="README")
    (_hook(tmp_path, "exit 1\n", name="60-off.hook")).chmod(0o644)
    call_hooks(str(tmp_path), "vif", "post", {})
