"""The frame every vif script runs in: parse, log, xenstore, one transaction, report the result.

``run_vif_script`` does what vif-common.sh and xen-hotplug-common.sh do
around a script's body and turns its outcome into upstream's contract:
exit 0 (and ``hotplug-status=connected`` after a PV online) or exit 1 with
``hotplug-error`` + ``hotplug-status=error``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from ..core import request
from ..core.args import merge_inputs, parse_args
from ..core.conf import ConfigError, read_config, setting
from ..core.errors import CallerGone, HotplugError, InputError, internal_error
from ..core.files import state_dir
from ..core.lock import DEFAULT_LOCK_DIR, hotplug_lock
from ..core.log import RunLog, make_log, script_name
from ..firewall import FirewallSettings, settings_from
from ..firewall.interface import Finish
from ..netlink.link import Undo
from ..xen import xenstore
from ..xen.context import (
    VIF_COMMANDS,
    VIF_VARIABLES,
    VifContext,
    backend_ids,
    build_vif_context,
    checked_backend_path,
)
from ..xen.hooks import DEFAULT_SCRIPT_DIR

Body = Callable[["Run"], None]


class Transaction(Undo):
    """One run's changes: each step pushes its inverse; firewall work may still be pending until commit."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Finish] = []  # firewall batches still being written (see update_vif_rules)

    def finish_pending(self) -> None:
        """Wait for every pending firewall batch; the first failure is raised once all have ended."""
        failure: BaseException | None = None
        while self.pending:
            try:
                self.pending.pop(0)()
            except Exception as e:  # noqa: BLE001 - every batch must land before a rollback removes it
                failure = failure or e
        if failure is not None:
            raise failure


@dataclass
class Run:
    """What a vif script's body gets: its inputs, all there (the config file read once), and its transaction."""

    argv: list[str]
    env: Mapping[str, str]
    log: RunLog
    conf: Mapping[str, str]
    xs: xenstore.XenStore
    ctx: VifContext
    settings: FirewallSettings
    script_dir: str
    connected: bool = False  # hotplug-status=connected written (by the transaction's commit)

    def check_caller(self) -> None:
        """Raise CallerGone if whoever asked for this run has gone (libxl killed it, it timed out)."""
        if request.current().caller_gone():
            raise CallerGone(f"{script_name(self.argv)} {' '.join(self.argv[1:2])}: abandoned, "
                             "its caller went away before it finished; undone")

    @contextmanager
    def transaction(self, success: str) -> Iterator[Transaction]:
        """Plug as one transaction: any exception (a hook, xenstore, a gone caller) undoes every step.

        On success the pending firewall work is waited for, the caller checked once
        more, *success* logged and, for a PV online, ``hotplug-status=connected``
        written (upstream's order), all before the undo list is dropped.
        """
        tx = Transaction()
        try:
            yield tx
            tx.finish_pending()
            self.check_caller()
            self.log.debug(success)
            if self.ctx.type_if == "vif" and self.ctx.command == "online":
                write(self, self.ctx.key("hotplug-status"), "connected")
                self.connected = True
        except BaseException:
            try:
                tx.finish_pending()  # a rule still being written must land before the rollback removes it
            except Exception as e:  # noqa: BLE001 - the first failure is the one reported
                self.log.debug(f"rollback: pending firewall work failed: {e}")
            tx.rollback(self.log.debug)
            raise


@dataclass
class _Call:
    """What the frame has so far, for reporting a failure at any point (the context may not exist yet)."""

    argv: list[str]
    env: Mapping[str, str]
    log: RunLog
    xs: xenstore.XenStore | None = None
    ctx: VifContext | None = None


def run_vif_script(argv: list[str], env: Mapping[str, str], stderr: TextIO | None, body: Body) -> int:
    """Run a vif script's *body* inside upstream's frame; return the exit status."""
    conf, bad_conf = read_config(env)  # the one read of the host's settings in this run
    log = make_log(argv, env, stderr, conf)
    call = _Call(argv, env, log)
    try:
        return _run(call, conf, bad_conf, body)
    except HotplugError as e:
        return _fail(call, str(e))
    except Exception as e:  # noqa: BLE001 - a bug still gets reported like upstream's ERR trap
        return _fail(call, internal_error(script_name(argv), e))
    finally:
        if call.xs is not None:
            call.xs.close()
        _close_log(log)


def _close_log(log: RunLog) -> None:
    """Close the run's log; a full disk under the log file never changes the result."""
    try:
        log.close()
    except (OSError, ValueError):
        pass


def _run(call: _Call, conf: dict[str, str], bad_conf: ConfigError | None, body: Body) -> int:
    args = parse_args(call.argv[1:])
    if bad_conf is not None:
        raise bad_conf
    variables = {k: conf[k] for k in VIF_VARIABLES if k in conf}
    variables.update(merge_inputs(dict(call.env), args.assignments, VIF_VARIABLES))
    variables["state_dir"] = state_dir(call.env, conf)  # the host's, never from argv: firewall records
    if args.command not in VIF_COMMANDS:
        raise InputError(f"Invalid command: {args.command or ''} (expected one of {', '.join(VIF_COMMANDS)})")
    type_if = variables.get("type_if") or "vif"
    if type_if not in ("vif", "tap"):
        raise InputError(f"unknown interface type {type_if}")
    if (args.command in ("online", "offline")) != (type_if == "vif"):
        return 0
    call.log.debug(" ".join(call.argv[1:]) + f" XENBUS_PATH={variables.get('XENBUS_PATH', '')}")
    try:  # every xenstore request bounded by the call's deadline, too
        xs = call.xs = xenstore.connect(call.env, timeout=min(xenstore.DEFAULT_TIMEOUT,
                                                             max(0.5, request.current().time_left())))
    except OSError as e:
        raise HotplugError(f"Cannot connect to xenstore: {e.filename or e}") from None
    if variables.get("UDEV_CALL") and xs.exists("libxl/disable_udev"):
        return 0
    ctx = call.ctx = build_vif_context(call.argv[0], args, variables, type_if, xs)
    call.log.fields.update({k: str(v) for k, v in (("VIF", ctx.dev), ("DOMID", ctx.domid), ("DEVID", ctx.devid))
                            if v is not None})
    settings = settings_from(ctx.variables)  # a bad firewall/antispoof value stops the run before anything changes
    run = Run(call.argv, call.env, call.log, conf, xs, ctx, settings, setting(call.env, conf, "script_dir", DEFAULT_SCRIPT_DIR))
    # One run per device at a time, host-wide, whichever path (daemon or in-process) runs it.
    lock_dir = call.env.get("XENSCRIPTS_LOCK_DIR") or DEFAULT_LOCK_DIR
    with hotplug_lock(device_lock_name(ctx), lock_dir, timeout=max(0.1, request.current().time_left())):
        run.check_caller()
        body(run)
        if ctx.type_if == "vif" and ctx.command == "online" and not run.connected:
            run.check_caller()
            write(run, ctx.key("hotplug-status"), "connected")
    return 0


def device_lock_name(ctx: VifContext) -> str:
    """The lock file name for *ctx*'s device: one per backend (domid, devid)."""
    ids = backend_ids(ctx.backend)
    return f"xenscripts-vif-{ids[0]}-{ids[1]}" if ids else f"xenscripts-{ctx.dev}"


def write(run: Run, path: str, value: str) -> None:
    """Upstream's xenstore_write: log it, write it, fail clearly."""
    run.log.debug(f"Writing {path} {value} to xenstore.")
    try:
        run.xs.write(path, value)
    except OSError as e:
        raise HotplugError(f"Writing {path} {value} to xenstore failed: {e}") from None


def _fail(run: _Call, message: str) -> int:
    """Report a fatal error: hotplug-error + hotplug-status=error, the logs, exit 1."""
    run.log.error(message)
    backend = _backend_for_report(run)
    if backend is None:
        return 1
    message = fit_xenstore_value(f"{backend}/hotplug-error", message)
    for _attempt in range(2):  # a dropped connection gets one fresh one
        try:
            if run.xs is None:
                run.xs = xenstore.connect(run.env)
            run.log.debug(f"Writing {backend}/hotplug-error {message} {backend}/hotplug-status error to xenstore.")
            # never re-create a backend directory libxl has removed
            run.xs.write_many([(f"{backend}/hotplug-error", message), (f"{backend}/hotplug-status", "error")],
                              only_if_exists=backend)
            return 1
        except OSError as e:
            run.log.error(f"Writing hotplug-error to xenstore failed: {e}")
            if run.xs is not None:
                run.xs.close()
                run.xs = None
    return 1


def fit_xenstore_value(path: str, value: str) -> str:
    """*value*, cut so a write of it to *path* fits xenstore's 4096-byte request limit."""
    room = xenstore.PAYLOAD_MAX - len(path.encode("utf-8", "surrogateescape")) - 1
    data = value.encode("utf-8", "surrogateescape")
    if len(data) <= room:
        return value
    marker = " [truncated]"
    return data[: max(0, room - len(marker))].decode("utf-8", "ignore") + marker


def report_failure(argv: list[str], env: Mapping[str, str], stderr: TextIO | None, message: str) -> int:
    """Report *message* as this run's fatal error (hotplug-error, logs, stderr) without running it."""
    log = make_log(argv, env, stderr)
    run = _Call(argv, env, log)
    try:
        return _fail(run, message)
    finally:
        if run.xs is not None:
            run.xs.close()
        _close_log(log)


def _backend_for_report(run: _Call) -> str | None:
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
