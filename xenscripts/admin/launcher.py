"""xenscripts-launch: the compiled interpreter of the entry files (``entry/launch.c``), built where a C compiler is.

With it, a hotplug call that hotplugd serves starts no Python at all (the
interpreter's own start is ~10 ms of CPU per NIC, a third of what upstream's
bash spends on a whole offline); everything else is handed to the entry file's
Python. Without a compiler the entry files keep ``#!/usr/bin/python3 -IS``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "entry" / "launch.c"  # the running package's own
NAME = "xenscripts-launch"
PYTHON = "/usr/bin/python3"  # what it execs the entry files with, as their own #! line would
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong", "-fPIE", "-pie",
          "-Wl,-z,relro,-z,now")


def compiler() -> str | None:
    """The C compiler on PATH (``cc``, ``gcc``), or None."""
    return shutil.which("cc") or shutil.which("gcc")


def build(out: Path, python: str = PYTHON) -> str | None:
    """Compile the package's ``entry/launch.c`` to *out*; None on success, else why not (in words)."""
    cc = compiler()
    if cc is None:
        return "no C compiler (apt-get install gcc)"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{NAME}.", dir=out.parent)
    os.close(fd)
    cp = subprocess.run([cc, *CFLAGS, f'-DPYTHON="{python}"', "-o", tmp, str(SOURCE)],
                        capture_output=True, text=True, timeout=120, check=False)
    if cp.returncode != 0:
        os.unlink(tmp)
        return f"{cc} failed: {cp.stderr.strip()[-500:]}"
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    return None


def with_launcher(entry: bytes, launcher: str) -> bytes:
    """An entry file whose ``#!`` line names *launcher* instead of Python (the rest unchanged)."""
    first, sep, rest = entry.partition(b"\n")
    if not first.startswith(b"#!"):
        raise ValueError("an entry file starts with #!")
    return f"#!{launcher}".encode() + sep + rest


def built(python: str = PYTHON) -> tuple[bytes | None, str]:
    """The launcher's bytes, compiled in a scratch directory (None when it cannot be), and what happened."""
    with tempfile.TemporaryDirectory(prefix="xenscripts-launch.") as tmp:
        out = Path(tmp) / NAME
        why = build(out, python)
        if why is not None:
            return None, f"{NAME} not built ({why}): the entry files start Python, ~10 ms more per call"
        return out.read_bytes(), f"{NAME} built: calls hotplugd serves start no Python"


def main(argv: list[str]) -> int:
    """``python3 -m xenscripts.admin.launcher OUT [PYTHON]``: build the launcher at OUT (packagers, tests)."""
    why = build(Path(argv[1]), *argv[2:3])
    if why is not None:
        print(f"{NAME}: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
