"""A wheel, pip-installed into a fresh venv, then ``xenscripts install`` from that venv (staged with --destdir).

The installer's templates come from the wheel's data files (``<venv>/share/xenscripts``);
the entry files run the venv's own package; uninstall takes everything away again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
                        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert cp.returncode == 0, f"{' '.join(argv)}: {cp.stdout}\n{cp.stderr}"
    return cp


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), ".")
    wheel = next((tmp / "dist").glob("xenscripts-*.whl"))
    run(sys.executable, "-m", "venv", str(tmp / "venv"))
    run(str(tmp / "venv" / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel))
    return tmp / "venv"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def test_install_from_a_wheel_uses_its_data_files_and_uninstall_takes_it_all_back(wheel_venv, tmp_path):
    admin = str(wheel_venv / "bin" / "xenscripts")
    dest = tmp_path / "root"
    out = run(admin, "install", "--destdir", str(dest), cwd=tmp_path).stdout
    files = files_under(dest)
    assert {"etc/xen/scripts/vif-bridge", "etc/systemd/system/xenscripts-hotplugd.socket",
            "etc/udev/rules.d/80-xenscripts-network.rules", "etc/xen/xenscripts.conf.example",
            "usr/local/share/man/man8/vif-bridge.8", "usr/local/share/doc/xenscripts/admin.md"} <= files, files
    assert not [f for f in files if f.startswith("opt/")], "no source copy and no venv from a wheel"
    launch = str(wheel_venv / "libexec" / "xenscripts-launch").lstrip("/")
    assert launch in files  # beside the wheel's venv; this machine has a C compiler
    assert (dest / "etc/xen/scripts/vif-bridge").read_text().startswith(f"#!/{launch}\n")
    site = next((wheel_venv / "lib").glob("python3.*/site-packages"))
    entry = (dest / "etc/xen/scripts/vif-bridge").read_text()
    assert f'SRC, VENV = "{site}", "{wheel_venv}"' in entry  # the venv pip installed into serves
    assert "xenscripts: installed into" in out
    run(admin, "uninstall", "--destdir", str(dest), cwd=tmp_path)
    assert files_under(dest) == set()
    assert (site / "xenscripts" / "__init__.py").is_file()  # uninstall never touches the venv itself
