"""The frame every vif script runs in: parse, log, xenstore, report the result.

``run_vif_script`` does what vif-common.sh and xen-hotplug-common.sh do
around a script's body and turns its outcome into upstream's contract:
exit 0 (and ``hotplug-status=connected`` after a PV online) or exit 1 with
``hotplug-error`` + ``hotplug-status=error``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TextIO

from . import xenstore
from .args import merge_inputs, parse_args
from .conf import ConfigError, load_config, setting
from .context import (
    VIF_COMMANDS,
    VIF_VARIABLES,
    VifContext,
    build_vif_context,
    checked_backend_path,
)
from .errors import HotplugError, InputError
from .hooks import DEFAULT_SCRIPT_DIR
from .log import DEFAULT_LOG_FILE, SYSLOG_SOCKET, RunLog

Body = Callable[["Run"], None]


class Run:
    """The per-run state handed to a script body: no globals, so a daemon can run many."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log: RunLog) -> None:
        self.argv = argv
        self.env = env
        self.log = log
        self.xs: xenstore.XenStore | None = None
        self.ctx: VifContext | None = None
        self.script_dir = env.get("XENSCRIPTS_SCRIPT_DIR") or _conf_script_dir(env)


def _conf_script_dir(env: Mapping[str, str]) -> str:
    """Where hooks live: ``script_dir`` in the host's config file, else /etc/xen/scripts."""
    try:
        return load_config(env).get("script_dir", DEFAULT_SCRIPT_DIR)
    except ConfigError:
        return DEFAULT_SCRIPT_DIR


def make_log(argv: list[str], env: Mapping[str, str], stderr: TextIO | None) -> RunLog:
    """The run's log: file and level from the host's config file (``XENSCRIPTS_*`` in tests)."""
    try:
        conf = load_config(env)
    except ConfigError:
        conf = {}  # the frame reports the bad line; the log still works with defaults
    return RunLog(script=argv[0] if argv else "xenscripts", stderr=stderr,
                  log_file=env.get("XENSCRIPTS_LOG_FILE", conf.get("log_file", DEFAULT_LOG_FILE)),
                  syslog_socket=env.get("XENSCRIPTS_SYSLOG", SYSLOG_SOCKET),
                  level=setting(env, conf, "log_level", "debug"))


def run_vif_script(argv: list[str], env: Mapping[str, str], stderr: TextIO | None, body: Body) -> int:
    """Run a vif script's *body* inside upstream's frame; return the exit status."""
    log = make_log(argv, env, stderr)
    run = Run(argv, env, log)
    try:
        return _run(run, body)
    except HotplugError as e:
        return _fail(run, str(e))
    except Exception as e:  # noqa: BLE001 - a bug still gets reported like upstream's ERR trap
        return _fail(run, f"{script_name(argv)} failed; internal error: {e!r}")
    finally:
        if run.xs is not None:
            run.xs.close()
        log.close()


def _run(run: Run, body: Body) -> int:
    args = parse_args(run.argv[1:])
    conf = load_config(run.env)
    variables = {k: conf[k] for k in VIF_VARIABLES if k in conf}
    variables.update(merge_inputs(dict(run.env), args.assignments, VIF_VARIABLES))
    if args.command not in VIF_COMMANDS:
        raise InputError(f"Invalid command: {args.command or ''}")
    type_if = variables.get("type_if") or "vif"
    if type_if not in ("vif", "tap"):
        raise InputError(f"unknown interface type {type_if}")
    if (args.command in ("online", "offline")) != (type_if == "vif"):
        return 0
    run.log.debug(" ".join(run.argv[1:]) + f" XENBUS_PATH={variables.get('XENBUS_PATH', '')}")
    try:
        run.xs = xenstore.connect(run.env)
    except OSError as e:
        raise HotplugError(f"Cannot connect to xenstore: {e}") from None
    if variables.get("UDEV_CALL") and run.xs.exists("libxl/disable_udev"):
        return 0
    run.ctx = build_vif_context(run.argv[0], args, variables, type_if, run.xs)
    body(run)
    if run.ctx.type_if == "vif" and run.ctx.command == "online":
        write(run, run.ctx.key("hotplug-status"), "connected")
    return 0


def write(run: Run, path: str, value: str) -> None:
    """Upstream's xenstore_write: log it, write it, fail clearly."""
    assert run.xs is not None
    run.log.debug(f"Writing {path} {value} to xenstore.")
    try:
        run.xs.write(path, value)
    except OSError as e:
        raise HotplugError(f"Writing {path} {value} to xenstore failed: {e}") from None


def _fail(run: Run, message: str) -> int:
    """Report a fatal error: hotplug-error + hotplug-status=error, the logs, exit 1."""
    run.log.error(message)
    backend = _backend_for_report(run)
    if backend is None:
        return 1
    try:
        if run.xs is None:
            run.xs = xenstore.connect(run.env)
        if not _plugging(run) and not run.xs.exists(backend):
            return 1  # never write into a backend directory that is being torn down
        run.log.debug(f"Writing {backend}/hotplug-error {message} {backend}/hotplug-status error to xenstore.")
        run.xs.write_many([(f"{backend}/hotplug-error", message), (f"{backend}/hotplug-status", "error")])
    except OSError as e:
        run.log.error(f"Writing hotplug-error to xenstore failed: {e}")
    return 1


def _plugging(run: Run) -> bool:
    """True unless this run takes a device down (offline/remove), as far as argv tells."""
    try:
        return parse_args(run.argv[1:]).command in ("online", "add")
    except InputError:
        return True


def _backend_for_report(run: Run) -> str | None:
    """Where to write hotplug-error: the validated backend path, if there is one."""
    if run.ctx is not None:
        return run.ctx.backend
    path = run.env.get("XENBUS_PATH") or ""
    for arg in run.argv[1:]:
        if arg.startswith("XENBUS_PATH="):
            path = arg.split("=", 1)[1]
    try:
        return checked_backend_path(path) if path else None
    except InputError:
        return None


def script_name(argv: list[str]) -> str:
    return os.path.basename(argv[0]) if argv else "xenscripts"
