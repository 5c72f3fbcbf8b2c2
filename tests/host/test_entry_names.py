"""Under any name, across upgrades: copies, symlinks, another Python's venv, the console scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from xensim.hotplugd import HotplugDaemon
from xensim.ours import REPO, install_entry

OTHER_PYTHONS = ["/root/.pyenv/versions/3.13.0/bin/python3", "/root/.pyenv/versions/3.12.1/bin/python3"]


@pytest.fixture
def scripts(tmp_path) -> Path:
    d = tmp_path / "scripts"
    d.mkdir()
    install_entry("vif-bridge", d / "vif-bridge")
    return d


def _connected(host, g) -> bool:
    return host.master_of(g.vif) == "xenbr0" and host.xs.read(g.backend + "/hotplug-status") == "connected"


@pytest.mark.parametrize("how", ["copy", "symlink", "script= via vif-setup"])
def test_an_entry_file_under_another_name_runs_its_command(simhost, scripts, how):
    g = simhost.add_guest(1)
    if how == "copy":
        shutil.copy(scripts / "vif-bridge", scripts / "vif-custom")
        cp = simhost.run_hotplug(str(scripts / "vif-custom"), 1)
    elif how == "symlink":
        (scripts / "vif-bridge-br1").symlink_to("vif-bridge")
        cp = simhost.run_hotplug(str(scripts / "vif-bridge-br1"), 1)
    else:
        (scripts / "vif-bridge-br1").symlink_to("vif-bridge")
        install_entry("vif-setup", scripts / "vif-setup")
        cp = simhost.run_hotplug(str(scripts / "vif-setup"), 1, extra_env={"script": str(scripts / "vif-bridge-br1")})
    assert cp.returncode == 0, cp.stderr
    assert _connected(simhost, g)


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory) -> tuple[Path, str]:
    """A venv built by another Python minor version (after a dist upgrade, say)."""
    python = next((p for p in OTHER_PYTHONS if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip(f"no other Python than /usr/bin/python3 here (looked for {', '.join(OTHER_PYTHONS)})")
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    version = subprocess.run([python, "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return venv, version


def test_another_pythons_venv_still_forwards_to_the_daemon(simhost, tmp_path, other_venv):
    g = simhost.add_guest(1)
    entry = install_entry("vif-bridge", tmp_path / "vif-bridge", venv=other_venv[0])
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")) as daemon:
        cp = simhost.run_hotplug(str(entry), 1, extra_env={"XENSCRIPTS_SOCKET": daemon.socket})
        assert cp.returncode == 0, cp.stderr
        assert daemon.served() == 1
    assert _connected(simhost, g)


def test_another_pythons_venv_without_daemon_says_what_is_wrong(simhost, tmp_path, other_venv):
    g = simhost.add_guest(1)
    venv, version = other_venv
    entry = install_entry("vif-bridge", tmp_path / "vif-bridge", venv=venv)
    cp = simhost.run_hotplug(str(entry), 1, extra_env={"XENSCRIPTS_SOCKET": str(tmp_path / "none.sock")})
    assert cp.returncode == 1
    error = simhost.xs.read(g.backend + "/hotplug-error")
    client_version = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                                    check=True, capture_output=True, text=True).stdout.strip()
    assert version in error and client_version in error and "xenscripts install" in error, error
    assert version in Path(simhost.log_file).read_text()
    assert "Traceback" not in cp.stderr
    assert simhost.master_of(g.vif) is None


def test_the_console_script_forwards_to_the_daemon(simhost, tmp_path):
    g = simhost.add_guest(1)
    with HotplugDaemon(str(tmp_path / "run" / "hotplugd.sock")) as daemon:
        cp = simhost.run_hotplug(str(REPO / ".venv" / "bin" / "vif-bridge"), 1,
                                 extra_env={"XENSCRIPTS_SOCKET": daemon.socket})
        assert cp.returncode == 0, cp.stderr
        assert daemon.served() == 1
    assert _connected(simhost, g)
