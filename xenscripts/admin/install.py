"""``xenscripts install`` and ``uninstall``: put the plan of ``layout.py`` in place, or take it away.

Upstream's scripts are kept beside ours as ``<name>.upstream`` (renamed, so
byte-identical, mode and times included) and put back by uninstall; a
``.dpkg-new``/``.dpkg-dist`` left by a package upgrade is the newer upstream
file, and uninstall restores that one instead. Every step is skipped when
already so: re-running either verb is safe. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

from . import launcher
from .hotplugd import PIDFILE, pidfile_pid
from .layout import INIT_SCRIPT, SAVED_SUFFIX, FileItem, Paths, plan_files
from .scriptdir import is_ours, newer_upstream
from .venv import HOST_PYTHON, OURS, python_version, venv_mismatch

Say = Callable[[str], None]
SOCKET_UNIT = "xenscripts-hotplugd.socket"
SERVICE_UNIT = "xenscripts-hotplugd.service"
NETWORK_UNIT = "xenscripts-network.service"


class Actions:
    """The only place that changes the file system or runs programs; with *dry_run*, only says so."""

    def __init__(self, say: Say, dry_run: bool) -> None:
        self.say = say
        self.dry_run = dry_run

    def do(self, what: str, action: Callable[[], object]) -> None:
        self.say(("would " if self.dry_run else "") + what)
        if not self.dry_run:
            action()

    def write(self, target: str, content: bytes, mode: int) -> None:
        """Write *target* atomically, unless it already holds exactly this."""
        if _same_file(target, content, mode):
            return
        self.do(f"write {target}", lambda: _write_atomic(target, content, mode))

    def run(self, argv: list[str], check: bool = True, hint: str = "") -> None:
        """Run *argv*; with *check*, a failure stops the install (OSError naming the command and *hint*)."""
        def call() -> None:
            status = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, timeout=600).returncode
            if check and status != 0:
                raise OSError(f"{' '.join(argv)} failed with status {status}" + (f" ({hint})" if hint else ""))
        self.do("run " + " ".join(argv), call)


def _same_file(path: str, content: bytes, mode: int) -> bool:
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read() == content and (os.stat(path).st_mode & 0o7777) == mode


def _write_atomic(target: str, content: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.xenscripts-new"
    with open(tmp, "wb") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


# ---------------------------------------------------------------- install
def place_script(item: FileItem, target: str, act: Actions) -> None:
    """Our entry file at *target*; upstream's file there first goes aside as ``.upstream``."""
    saved = target + SAVED_SUFFIX
    if os.path.lexists(target) and not is_ours(target):
        if os.path.lexists(saved):
            act.do(f"replace {saved} with the newer upstream {target} (a package put it back)",
                   lambda: os.replace(target, saved))
        else:
            act.do(f"keep upstream's {target} as {saved}", lambda: os.rename(target, saved))
    act.write(target, item.content, item.mode)


def replace_venv_copies(paths: Paths, plan: list[FileItem], act: Actions) -> None:
    """pip's copies of the entry files in the venv's ``bin/`` become the installed entry files (launcher and all).

    pip writes them with the venv's Python on their ``#!`` line, which pays an
    interpreter start (and the venv's site set-up) on every call hotplugd serves;
    the installed entry file runs the same command from anywhere. Uninstall
    writes them again without the launcher it removes.
    """
    for item in plan:
        own = os.path.join(paths.venv, "bin", os.path.basename(item.path))
        if item.kind == "entry" and os.path.isfile(own) and not os.path.islink(own):
            act.write(own, item.content, item.mode)


def prune_source_copy(paths: Paths, planned: set[str], act: Actions) -> None:
    """Remove files of an older release from ``<prefix>/src`` (a module since deleted must not linger)."""
    src = paths.staged(paths.src)
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(root, name)
            if path not in planned:
                act.do(f"remove {path} (not in this release)", partial(os.unlink, path))


VENV_HINT = "Debian's python3 makes a venv only with python3-venv installed: 'apt-get install python3-venv'"
PIP_HINT = ("pip's own messages are above; the usual causes: no package index (connect the host, set "
            "PIP_INDEX_URL, or use --wheelhouse DIR), no compiler or Python headers for python-iptables "
            "('apt-get install build-essential python3-dev'); nothing outside <prefix> was changed, "
            "and the Debian package (make deb) needs neither")


def ensure_venv(paths: Paths, python: str, act: Actions, wheelhouse: str | None = None) -> None:
    """A venv at ``<prefix>/venv`` made by the host's Python, with the package from ``<prefix>/src``."""
    if paths.destdir:
        act.say(f"venv: not built under --destdir; on the target run 'xenscripts install --prefix {paths.prefix}'")
        return
    venv = paths.venv
    host = python_version(python)
    problem = venv_mismatch(venv, host)
    if problem and os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        act.say(f"venv: {problem}")
        act.run([python, "-m", "venv", "--clear", venv], hint=VENV_HINT)
    elif problem:
        act.run([python, "-m", "venv", venv], hint=VENV_HINT)
    act.write(os.path.join(venv, OURS), b"made by xenscripts install\n", 0o644)
    offline = ["--no-index", "--find-links", wheelhouse] if wheelhouse else []
    act.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", *offline, paths.src],
            hint=PIP_HINT)
    act.run([os.path.join(venv, "bin", "python"), "-m", "compileall", "-q", os.path.join(venv, "lib")])


def install(paths: Paths, source: Path, act: Actions, python: str = HOST_PYTHON,
            skip_venv: bool = False, wheelhouse: str | None = None, preflight: bool = True,
            copy_source: bool = True) -> int:
    """The preflight, then the source copy and the venv (a failed pip leaves the scripts as they were), then the rest.

    A missing prerequisite stops the install before anything is touched (exit 1);
    ``--dry-run`` lists it and goes on saying what would change.
    """
    if preflight and not paths.destdir:
        from . import preflight as pre

        found = pre.check(python, wheelhouse, os.environ, build_venv=not skip_venv)
        for line in pre.report(found):
            act.say(line)
        if any(f.fatal for f in found):
            if not act.dry_run:
                act.say("xenscripts: nothing was changed; fix the MISSING lines above and run install again "
                        "(--no-preflight skips these checks)")
                return 1
            act.say("xenscripts: install would stop here; what it would then change:")
    daemon_was_running = not paths.destdir and daemon_running()
    launch, said = launcher.built()
    act.say(said)
    plan = plan_files(paths, source, launch)
    sources = [item for item in plan if item.kind == "source"]
    if copy_source:  # from a wheel the package is already where it runs: <prefix>/src is not made (nor pruned)
        for item in sources:
            act.write(paths.staged(item.path), item.content, item.mode)
        prune_source_copy(paths, {paths.staged(item.path) for item in sources}, act)
    if not skip_venv:
        ensure_venv(paths, python, act, wheelhouse)
    for item in plan:
        target = paths.staged(item.path)
        if item.kind == "entry":
            place_script(item, target, act)
        elif item.kind != "source":
            act.write(target, item.content, item.mode)
    if not paths.destdir:
        replace_venv_copies(paths, plan, act)
    if launch is None:  # the entry files now start Python: an earlier install's launcher goes
        _remove_launcher(paths, act)
    legacy = paths.staged(os.path.join(paths.script_dir, "xenscripts-run"))
    if is_ours(legacy):
        act.do(f"remove {legacy} (install.sh's shared entry point)", lambda: os.unlink(legacy))
    if not paths.destdir:
        start_services(paths, act, daemon_was_running)
    act.say(f"xenscripts: installed into {paths.staged(paths.script_dir)}")
    return 0


# ---------------------------------------------------------------- uninstall
def restore_script(target: str, act: Actions) -> None:
    """Put upstream's file back at *target* (the newer one a package upgrade left, if any)."""
    saved = target + SAVED_SUFFIX
    if os.path.lexists(target) and not is_ours(target):
        act.say(f"{target} is not ours: left as it is")
        return
    newer = newer_upstream(target)
    if newer is not None and os.path.lexists(target):
        act.do(f"restore {target} from {newer}, the newer upstream file a package upgrade left "
               f"(older copy {saved} dropped)" if os.path.lexists(saved) else
               f"restore {target} from {newer}, the newer upstream file a package upgrade left",
               lambda: os.replace(newer, target))
        if os.path.lexists(saved):
            act.do(f"remove {saved}", lambda: os.unlink(saved))
    elif os.path.lexists(saved):
        act.do(f"restore upstream's {target} from {saved}", lambda: os.replace(saved, target))
    elif os.path.lexists(target):
        act.do(f"remove {target} (no upstream file of that name)", lambda: os.unlink(target))


def _remove(target: str, act: Actions) -> None:
    if os.path.lexists(target):
        act.do(f"remove {target}", lambda: os.unlink(target))


def _remove_launcher(paths: Paths, act: Actions) -> None:
    target = paths.staged(paths.launcher)
    _remove(target, act)
    _prune(os.path.dirname(target), os.path.dirname(os.path.dirname(target)), act)


def _prune(directory: str, stop: str, act: Actions) -> None:
    """Remove *directory* and its parents up to *stop* while they are empty."""
    while directory.startswith(stop) and directory != stop and os.path.isdir(directory) \
            and not os.listdir(directory):
        act.do(f"remove empty {directory}/", partial(os.rmdir, directory))
        directory = os.path.dirname(directory)


def uninstall(paths: Paths, source: Path, act: Actions) -> int:
    """Take away everything install put in place; upstream's scripts come back."""
    if not paths.destdir:
        stop_services(paths, act)
    for item in plan_files(paths, source):
        target = paths.staged(item.path)
        if item.kind == "entry":
            restore_script(target, act)
            continue
        if item.kind != "source":
            _remove(target, act)
    venv = paths.staged(paths.venv)
    if not paths.destdir and not os.path.isfile(os.path.join(venv, OURS)):  # a venv that stays (a wheel's)
        replace_venv_copies(paths, plan_files(paths, source), act)  # they start Python again, not the launcher
    _remove_launcher(paths, act)  # after the entry files that named it
    legacy = paths.staged(os.path.join(paths.script_dir, "xenscripts-run"))
    if is_ours(legacy):
        _remove(legacy, act)
    src = paths.staged(paths.src)
    if not paths.src_dir and is_ours(os.path.join(src, "bin", "vif-bridge")):  # our copy, never a given tree
        act.do(f"remove the source copy {src}", lambda: shutil.rmtree(src))
    if os.path.isfile(os.path.join(venv, OURS)):
        act.do(f"remove the venv {venv}", lambda: shutil.rmtree(venv))
    prefix = paths.staged(paths.prefix)
    _prune(prefix, os.path.dirname(prefix), act)
    for kind_dir in (paths.docdir, paths.mandir):
        _prune(paths.staged(kind_dir), paths.staged(os.path.dirname(kind_dir)), act)
    if not paths.destdir and systemd_booted():
        act.run(["systemctl", "daemon-reload"], check=False)  # forget the unit files just removed
    act.say(f"xenscripts: uninstalled from {paths.staged(paths.script_dir)}")
    return 0


# ---------------------------------------------------------------- services
def systemd_booted() -> bool:
    return os.path.isdir("/run/systemd/system")


def daemon_running(pidfile: str = PIDFILE) -> bool:
    """A hotplugd runs: its pidfile names a live process (init script), or systemd says so."""
    if pidfile_pid(pidfile) is not None:
        return True
    return systemd_booted() and subprocess.run(
        ["systemctl", "is-active", "--quiet", SERVICE_UNIT], check=False, stdin=subprocess.DEVNULL).returncode == 0


def start_services(paths: Paths, act: Actions, restart: bool) -> None:
    """Enable hotplugd (socket on systemd, the init script elsewhere); restart one that runs."""
    init = os.path.join(paths.init_dir, INIT_SCRIPT)
    if systemd_booted():
        act.run(["systemctl", "daemon-reload"], check=False)
        act.run(["systemctl", "enable", "--now", SOCKET_UNIT], check=False)
        if restart:
            act.run(["systemctl", "try-restart", SERVICE_UNIT], check=False)
        return
    if shutil.which("update-rc.d") and os.path.exists(init):
        act.run(["update-rc.d", INIT_SCRIPT, "defaults"], check=False)
    if os.path.exists(init):
        act.run([init, "restart" if restart else "start"], check=False)
    if restart:
        act.say("hotplugd restarted: new code serves the next request")


def stop_services(paths: Paths, act: Actions) -> None:
    """Stop and disable hotplugd before its files go."""
    init = os.path.join(paths.init_dir, INIT_SCRIPT)
    if systemd_booted():
        if os.path.exists(os.path.join(paths.unit_dir, SOCKET_UNIT)):
            act.run(["systemctl", "disable", "--now", SOCKET_UNIT, SERVICE_UNIT], check=False)
        if os.path.exists(os.path.join(paths.unit_dir, NETWORK_UNIT)):
            # disabled, not stopped: stopping it would take the bridges down under running guests
            act.run(["systemctl", "disable", NETWORK_UNIT], check=False)
        return
    if os.path.exists(init):
        act.run([init, "stop"], check=False)
        if shutil.which("update-rc.d"):
            act.run(["update-rc.d", "-f", INIT_SCRIPT, "remove"], check=False)
