"""How tests, the demo and the benchmarks start our scripts: the installed way."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"
LAUNCHED = REPO / "build" / "launch"  # the entry files with xenscripts-launch as their #! (made on first use)
LAUNCH_C = REPO / "xenscripts" / "entry" / "launch.c"
UPSTREAM_DIR = Path("/etc/xen/scripts")
_build_lock = threading.Lock()


CLIENTS = ("launch", "python")  # what starts our entry files: xenscripts-launch, or Python itself


def our_command(name: str, client: str | None = None) -> list[str]:
    """argv prefix that runs our script *name* (``vif-bridge``…) as libxl would: by its path.

    Its ``#!/usr/bin/python3 -IS`` thin client forwards to hotplugd when one
    listens on ``XENSCRIPTS_SOCKET`` (daemon mode), else runs in-process. With
    ``XENSCRIPTS_TEST_CLIENT=launch``, the same entry file has the compiled
    ``xenscripts-launch`` as its interpreter, as an installation with a C compiler has.
    """
    if (client or os.environ.get("XENSCRIPTS_TEST_CLIENT")) == "launch":
        return [str(launched_bin() / name)]
    return [str(BIN / name)]


def client_option(parser) -> None:
    """The benches' ``--client launch|python`` (what starts our entry files); ``use_client`` applies it."""
    parser.add_argument("--client", choices=CLIENTS, default="launch",
                        help="our entry files started by the compiled xenscripts-launch (an installation with "
                             "a C compiler: the default) or by Python (#!/usr/bin/python3 -IS)")


def use_client(client: str) -> None:
    """Every later ``our_command`` starts the entry files with *client*."""
    os.environ["XENSCRIPTS_TEST_CLIENT"] = client


def launched_bin() -> Path:
    """``build/launch/bin``: every entry file of ``bin/`` run by a freshly built ``xenscripts-launch``
    (built as the installer builds it: ``python3 -m xenscripts.admin.launcher``)."""
    exe = LAUNCHED / "xenscripts-launch"
    with _build_lock:
        newest = max(p.stat().st_mtime for p in [LAUNCH_C, *BIN.iterdir()])
        if not exe.exists() or exe.stat().st_mtime < newest:
            cp = subprocess.run([sys.executable, "-m", "xenscripts.admin.launcher", str(exe)], cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False)
            if cp.returncode != 0:
                raise RuntimeError(f"cannot build {exe}: {cp.stderr.strip()}")
            (LAUNCHED / "bin").mkdir(parents=True, exist_ok=True)
            for entry in BIN.iterdir():
                text = entry.read_text().replace("@SRC@", str(REPO)).replace("@VENV@", str(REPO / ".venv"))
                target = LAUNCHED / "bin" / entry.name
                target.write_text(f"#!{exe}\n" + text.split("\n", 1)[1])  # as the installer writes it
                target.chmod(0o755)
    return LAUNCHED / "bin"


def upstream_command(name: str) -> list[str]:
    """argv prefix that runs Debian's upstream script *name*."""
    return [str(UPSTREAM_DIR / name)]


def install_entry(name: str, path: Path, venv: Path | None = None) -> Path:
    """Install our entry file for *name* at *path* as install.sh does (source dir, venv filled in)."""
    text = (BIN / name).read_text().replace("@SRC@", str(REPO)).replace("@VENV@", str(venv or REPO / ".venv"))
    path.write_text(text)
    path.chmod(0o755)
    return path
