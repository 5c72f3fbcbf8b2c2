"""xenscripts install/uninstall into a --destdir under tmp: the real /etc/xen/scripts is only read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xenscripts.admin.layout import SCRIPT_NAMES, Paths, plan_files
from xenscripts.admin.main import run

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = Path("/etc/xen/scripts")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file under *root*: content, mode and modification time (what "byte-identical" means)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        data = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
        out[str(p.relative_to(root))] = (data, st.st_mode, st.st_mtime_ns)
    return out


def files_under(root: Path) -> set[str]:
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def destdir(tmp_path: Path) -> Path:
    """A staging root whose script dir is a copy of this machine's upstream scripts."""
    root = tmp_path / "root"
    scripts = root / "etc/xen/scripts"
    if UPSTREAM.is_dir():
        shutil.copytree(UPSTREAM, scripts, symlinks=True)
    else:  # a machine without xen-utils-common: a stand-in upstream file
        scripts.mkdir(parents=True)
        (scripts / "vif-bridge").write_text("#!/bin/sh\n# upstream\n")
    return root


def xenscripts(*args: str) -> tuple[int, str, str]:
    """Run the admin command in-process; (status, stdout, stderr)."""
    import io

    out, err = io.StringIO(), io.StringIO()
    status = run(["xenscripts", *args], {}, err, out)
    return status, out.getvalue(), err.getvalue()


def test_install_then_uninstall_leaves_the_script_dir_byte_identical(destdir: Path) -> None:
    before = snapshot(destdir / "etc/xen/scripts")
    status, _, err = xenscripts("install", "--destdir", str(destdir))
    assert status == 0, err
    scripts = destdir / "etc/xen/scripts"
    for name in SCRIPT_NAMES:
        text = (scripts / name).read_text()
        assert "xenscripts entry point" in text and "/opt/xenscripts/venv" in text, name
        assert os.access(scripts / name, os.X_OK)
        if (UPSTREAM / name).is_file():
            assert (scripts / f"{name}.upstream").read_bytes() == (UPSTREAM / name).read_bytes()
    status, _, err = xenscripts("uninstall", "--destdir", str(destdir))
    assert status == 0, err
    assert snapshot(scripts) == before


def test_destdir_tree_lists_every_file_and_nothing_else(destdir: Path) -> None:
    upstream = files_under(destdir)
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    paths = Paths()
    planned = {item.path for item in plan_files(paths, REPO, launch=b"the compiled launcher")}
    saved = {f"/etc/xen/scripts/{n}.upstream" for n in SCRIPT_NAMES if (destdir / f"etc/xen/scripts/{n}").is_file()
             and f"/etc/xen/scripts/{n}" in upstream}
    assert files_under(destdir) == upstream | planned | saved
    expected = {
        "/etc/systemd/system/xenscripts-hotplugd.service",
        "/etc/systemd/system/xenscripts-hotplugd.socket",
        "/etc/init.d/xenscripts-hotplugd",
        "/etc/udev/rules.d/80-xenscripts-network.rules",
        "/usr/local/sbin/xenscripts",
        "/etc/xen/xenscripts.conf.example",
        "/etc/systemd/system/xenscripts-network.service",
        "/usr/local/share/doc/xenscripts/README.md",
        "/usr/local/share/doc/xenscripts/LICENSE",
        "/opt/xenscripts/src/setup.cfg",
        "/opt/xenscripts/src/xenscripts/admin/install.py",
        "/opt/xenscripts/libexec/xenscripts-launch",
    }
    expected |= {f"/usr/local/share/man/man8/{p.name}" for p in (REPO / "man").glob("*.8")}
    expected |= {f"/etc/logrotate.d/{p.name}" for p in (REPO / "logrotate").glob("*")}
    assert expected <= files_under(destdir)
    unit = (destdir / "etc/systemd/system/xenscripts-hotplugd.service").read_text()
    assert "@" not in unit.replace("@system-service", "")
    assert "ExecStart=/opt/xenscripts/venv/bin/xenscripts-hotplugd" in unit
    rules = (destdir / "etc/udev/rules.d/80-xenscripts-network.rules").read_text()
    assert 'RUN+="/etc/xen/scripts/vif-setup online type_if=vif"' in rules
    assert (destdir / "etc/xen/xenscripts.conf.example").read_bytes() == (REPO / "etc/xenscripts.conf.example").read_bytes()
    launch = destdir / "opt/xenscripts/libexec/xenscripts-launch"
    assert launch.read_bytes().startswith(b"\x7fELF") and os.access(launch, os.X_OK)
    for name in SCRIPT_NAMES:  # each entry file is started by it (the path it has on the host)
        assert (destdir / "etc/xen/scripts" / name).read_text().startswith("#!/opt/xenscripts/libexec/xenscripts-launch\n")


def test_without_a_compiler_the_entry_files_start_python(destdir: Path, monkeypatch) -> None:
    """No cc: the install goes on, says so, and the entry files keep their Python line; a launcher an
    earlier install left goes; uninstall takes it away too."""
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    launch = destdir / "opt/xenscripts/libexec/xenscripts-launch"
    assert launch.exists()
    monkeypatch.setenv("PATH", "/nonexistent")
    status, out, err = xenscripts("install", "--destdir", str(destdir))
    assert status == 0, err
    assert "xenscripts-launch not built (no C compiler" in out
    assert (destdir / "etc/xen/scripts/vif-bridge").read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert not launch.exists() and not launch.parent.exists()
    monkeypatch.undo()
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    assert xenscripts("uninstall", "--destdir", str(destdir))[0] == 0
    assert not launch.exists()


def test_units_name_the_script_dir_installed_into(destdir: Path) -> None:
    assert xenscripts("install", "--destdir", str(destdir), "--script-dir", "/srv/xen/scripts")[0] == 0
    unit = (destdir / "etc/systemd/system/xenscripts-network.service").read_text()
    assert "ExecStart=/srv/xen/scripts/network-bridge start" in unit
    assert "ExecStop=/srv/xen/scripts/network-bridge stop" in unit


def test_rerunning_install_changes_nothing_and_uninstall_twice_is_quiet(destdir: Path) -> None:
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    first = snapshot(destdir)
    status, out, _ = xenscripts("install", "--destdir", str(destdir))
    assert status == 0 and "write " not in out and "keep " not in out
    assert snapshot(destdir) == first
    assert xenscripts("uninstall", "--destdir", str(destdir))[0] == 0
    after = snapshot(destdir / "etc/xen/scripts")
    status, out, _ = xenscripts("uninstall", "--destdir", str(destdir))
    assert status == 0 and "restore" not in out and "remove " not in out
    assert snapshot(destdir / "etc/xen/scripts") == after


def test_uninstall_restores_the_newer_dpkg_new_file_and_says_so(destdir: Path) -> None:
    scripts = destdir / "etc/xen/scripts"
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    newer = b"#!/bin/bash\n# vif-bridge from a newer xen-utils-common\n"
    (scripts / "vif-bridge.dpkg-new").write_bytes(newer)
    status, out, _ = xenscripts("uninstall", "--destdir", str(destdir))
    assert status == 0
    assert (scripts / "vif-bridge").read_bytes() == newer
    assert not (scripts / "vif-bridge.dpkg-new").exists() and not (scripts / "vif-bridge.upstream").exists()
    assert "vif-bridge.dpkg-new" in out and "newer upstream" in out


def test_dry_run_changes_nothing(destdir: Path) -> None:
    before = snapshot(destdir)
    status, out, _ = xenscripts("install", "--destdir", str(destdir), "--dry-run")
    assert status == 0 and "would write" in out and "would keep upstream's" in out
    assert snapshot(destdir) == before


def test_a_file_that_is_not_ours_is_left_alone_by_uninstall(destdir: Path) -> None:
    scripts = destdir / "etc/xen/scripts"
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    (scripts / "network").write_text("#!/bin/sh\n# the admin's own\n")
    status, out, _ = xenscripts("uninstall", "--destdir", str(destdir))
    assert status == 0 and "is not ours" in out
    assert (scripts / "network").read_text() == "#!/bin/sh\n# the admin's own\n"


def test_install_sh_is_a_wrapper_for_the_admin_command(destdir: Path) -> None:
    cp = subprocess.run([str(REPO / "install.sh"), "--destdir", str(destdir), "--dry-run"],
                        capture_output=True, text=True, env={"PATH": os.environ["PATH"], "PYTHON": sys.executable},
                        check=False)
    assert cp.returncode == 0, cp.stderr
    assert "would write " + str(destdir / "etc/xen/scripts/vif-bridge") in cp.stdout
    assert len((REPO / "install.sh").read_text().splitlines()) == 2


def test_bad_arguments_are_a_usage_error() -> None:
    status, _, err = xenscripts("install", "--no-such-option")
    assert status == 2 and "usage: xenscripts" in err


def test_installing_over_a_running_daemon_restarts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xenscripts.admin import install as mod

    calls = tmp_path / "calls"
    init = tmp_path / "xenscripts-hotplugd"
    init.write_text(f'#!/bin/sh\necho "$1" >> {calls}\n')
    init.chmod(0o755)
    monkeypatch.setattr(mod, "systemd_booted", lambda: False)
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)  # never the real update-rc.d
    said: list[str] = []
    act = mod.Actions(said.append, dry_run=False)
    mod.start_services(Paths(init_dir=str(tmp_path)), act, restart=True)
    mod.start_services(Paths(init_dir=str(tmp_path)), act, restart=False)
    assert calls.read_text().split() == ["restart", "start"]
    assert any("restarted" in line for line in said)


def test_entry_files_from_per_name_templates(tmp_path: Path) -> None:
    from xenscripts.admin.layout import entry_file

    (tmp_path / "bin").mkdir()
    for name in ("vif-bridge", "network-bridge"):  # the entry files' shape
        (tmp_path / "bin" / name).write_text(f'#!/usr/bin/python3 -IS\n"""xenscripts entry point for {name}"""\n'
                                             f'SRC, VENV = "@SRC@", "@VENV@"\nmain("{name}", VENV)\n')
    paths = Paths(prefix="/opt/xs")
    text = entry_file("vif-bridge", paths, tmp_path).decode()
    assert 'SRC, VENV = "/opt/xs/src", "/opt/xs/venv"' in text and 'main("vif-bridge"' in text
    assert 'main("network-bridge"' in entry_file("network", paths, tmp_path).decode()
    (tmp_path / "bin" / "vif-route").write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="entry point"):
        entry_file("vif-route", paths, tmp_path)


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_a_man_page_per_entry_point_renders_without_warnings() -> None:
    pages = {p.stem for p in (REPO / "man").glob("*.8")}
    assert pages == (set(SCRIPT_NAMES) - {"network"}) | {"xenscripts", "xenscripts-hotplugd"}
    for page in sorted(pages):
        cp = subprocess.run(["man", "--warnings", "-l", str(REPO / "man" / f"{page}.8")], capture_output=True,
                            text=True, env={"PATH": os.environ["PATH"], "MANWIDTH": "80", "LC_ALL": "C.UTF-8"},
                            check=False)
        assert cp.returncode == 0 and cp.stderr == "", f"{page}: {cp.stderr}"
        assert page.upper() in cp.stdout and "SEE ALSO" in cp.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_the_installed_hotplugd_unit_is_rated_under_5_and_starts_only_on_xen(destdir: Path) -> None:
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    unit_dir = destdir / "etc/systemd/system"
    cp = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=50",
                         "xenscripts-hotplugd.service"], capture_output=True, text=True, cwd=unit_dir, check=False)
    score = float(cp.stdout.rsplit("exposure level for xenscripts-hotplugd.service:", 1)[1].split()[0])
    assert score < 5, cp.stdout
    for unit in ("xenscripts-hotplugd.service", "xenscripts-hotplugd.socket"):
        text = (unit_dir / unit).read_text()
        assert "Before=xendomains.service" in text
        # the service starts only on a Xen host; the socket listens from early boot, before xenfs is mounted
        assert ("\nConditionPathExists=/proc/xen/capabilities" in text) == unit.endswith(".service")
        assert "Documentation=man:xenscripts-hotplugd(8) file:///usr/local/share/doc/xenscripts/admin.md" in text
    assert (destdir / "usr/local/share/doc/xenscripts/admin.md").is_file()


def test_a_failing_venv_build_stops_the_install_with_the_command_named(tmp_path: Path) -> None:
    from xenscripts.admin.install import Actions, ensure_venv

    said: list[str] = []
    with pytest.raises(OSError, match=r"/bin/false -m venv .* failed with status 1"):
        ensure_venv(Paths(prefix=str(tmp_path)), "/bin/false", Actions(said.append, dry_run=False))
    assert said == [f"run /bin/false -m venv {tmp_path}/venv"]


def test_reinstalling_drops_files_an_older_release_left_in_the_source_copy(destdir: Path) -> None:
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    old = destdir / "opt/xenscripts/src/xenscripts/gone.py"
    old.write_text("# a module this release no longer has\n")
    status, out, _ = xenscripts("install", "--destdir", str(destdir))
    assert status == 0 and not old.exists() and f"remove {old}" in out


def test_a_failed_venv_build_leaves_the_script_dir_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xenscripts.admin import install as mod

    monkeypatch.setattr(mod, "start_services", lambda *a: pytest.fail("services touched"))
    monkeypatch.setattr(mod, "daemon_running", lambda *a: False)
    dirs = {k: str(tmp_path / k) for k in ("script_dir", "datadir", "sbindir", "unit_dir", "udev_dir", "init_dir",
                                           "logrotate_dir")}
    (tmp_path / "script_dir").mkdir()
    (tmp_path / "script_dir" / "vif-bridge").write_text("#!/bin/sh\n# upstream\n")
    before = snapshot(tmp_path / "script_dir")
    paths = Paths(prefix=str(tmp_path / "prefix"), **dirs)
    said: list[str] = []
    # the preflight sees that /bin/false makes no venv, says what fixes it and touches nothing
    assert mod.install(paths, REPO, mod.Actions(said.append, False), python="/bin/false") == 1
    assert "preflight: MISSING: /bin/false cannot make a venv (no venv/ensurepip module): " \
           "apt-get install python3-venv" in said
    assert not (tmp_path / "prefix").exists() and snapshot(tmp_path / "script_dir") == before
    # past the preflight, a failed venv build stops the install with what to do
    with pytest.raises(OSError, match=r"venv .* failed with status 1 \(Debian's python3 makes a venv only with python3-venv"):
        mod.install(paths, REPO, mod.Actions(lambda _: None, False), python="/bin/false", preflight=False)
    assert snapshot(tmp_path / "script_dir") == before
    assert not (tmp_path / "unit_dir").exists()


def test_uninstall_run_from_the_installed_source_copy_takes_everything_back_itself_included(destdir: Path) -> None:
    """The admin command in /usr/local/sbin runs from <prefix>/src: uninstall from there removes that copy too."""
    upstream = files_under(destdir)
    assert xenscripts("install", "--destdir", str(destdir))[0] == 0
    src = destdir / "opt/xenscripts/src"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import xenscripts; "
            "assert xenscripts.__file__.startswith(sys.argv[1]), xenscripts.__file__; "
            "from xenscripts.admin.main import main; sys.exit(main(['uninstall', '--destdir', sys.argv[2]]))")
    cp = subprocess.run([sys.executable, "-I", "-c", code, str(src), str(destdir)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"remove the source copy {src}" in cp.stdout
    assert files_under(destdir) == upstream and not (destdir / "opt/xenscripts").exists()


def test_the_installed_admin_command_defaults_to_its_own_prefix(tmp_path: Path) -> None:
    from xenscripts.admin.main import installed_prefix
    from xenscripts.admin.venv import OURS

    (tmp_path / "srv/xs/src").mkdir(parents=True)
    assert installed_prefix(tmp_path / "srv/xs/src") is None  # no venv an install made beside it
    (tmp_path / "srv/xs/venv").mkdir()
    (tmp_path / "srv/xs/venv" / OURS).write_text("made by xenscripts install\n")
    assert installed_prefix(tmp_path / "srv/xs/src") == str(tmp_path / "srv/xs")
    assert installed_prefix(REPO) is None  # a checkout


def test_install_and_uninstall_leave_a_host_the_debian_package_owns_to_apt(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from xenscripts.admin import package

    dpkg_list = tmp_path / "xenscripts.list"
    dpkg_list.write_text("/usr/lib/xenscripts\n")
    monkeypatch.setattr(package, "DPKG_LIST", str(dpkg_list))
    for verb in ("install", "uninstall"):
        status, out, err = xenscripts(verb, "--dry-run")
        assert status == 1 and out == "", out
        assert "the Debian package xenscripts is installed" in err and "'apt remove xenscripts'" in err
    assert xenscripts("install", "--destdir", str(tmp_path / "root"), "--dry-run")[0] == 0  # packagers still stage


def test_the_venvs_own_copies_become_the_entry_files_and_start_python_again_after_uninstall(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's ``<venv>/bin/vif-bridge`` (the venv's Python on its #! line) is replaced by the installed entry
    file, launcher and all; uninstall leaves a venv it did not make with copies that start Python."""
    from xenscripts.admin import install as mod

    monkeypatch.setattr(mod, "start_services", lambda *a: None)
    monkeypatch.setattr(mod, "stop_services", lambda *a: None)
    monkeypatch.setattr(mod, "daemon_running", lambda *a: False)
    monkeypatch.setattr(mod, "systemd_booted", lambda: False)
    venv, site = tmp_path / "venv", tmp_path / "site-packages"  # a wheel's venv; never the checkout itself
    (venv / "bin").mkdir(parents=True)
    site.mkdir()
    (site / "xenscripts").symlink_to(REPO / "xenscripts")
    pips = venv / "bin" / "vif-bridge"
    pips.write_text(f"#!{venv}/bin/python\n" + (REPO / "bin" / "vif-bridge").read_text().split("\n", 1)[1])
    pips.chmod(0o755)
    (venv / "bin" / "xenscripts").write_text("#!/bin/sh\n# pip's admin command\n")
    dirs = {k: str(tmp_path / k) for k in ("script_dir", "datadir", "sbindir", "unit_dir", "udev_dir", "init_dir",
                                           "logrotate_dir")}
    paths = Paths(prefix=str(tmp_path / "prefix"), venv_dir=str(venv), src_dir=str(site), **dirs)
    said: list[str] = []
    assert mod.install(paths, REPO, mod.Actions(said.append, False), skip_venv=True, preflight=False,
                       copy_source=False) == 0
    installed = (tmp_path / "script_dir" / "vif-bridge").read_bytes()
    assert pips.read_bytes() == installed and os.access(pips, os.X_OK)
    if shutil.which("cc") or shutil.which("gcc"):
        assert installed.startswith(f"#!{venv}/libexec/xenscripts-launch\n".encode())
    assert (venv / "bin" / "xenscripts").read_text() == "#!/bin/sh\n# pip's admin command\n"  # not an entry file
    assert mod.uninstall(paths, REPO, mod.Actions(said.append, False)) == 0
    assert not (venv / "libexec" / "xenscripts-launch").exists() and (site / "xenscripts").exists()
    after = pips.read_text()
    assert after.startswith("#!/usr/bin/python3") and f'"{site}", "{venv}"' in after  # runs without the launcher
    cp = subprocess.run([str(pips), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0 and "vif-bridge" in cp.stdout, cp
