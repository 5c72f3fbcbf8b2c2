"""The frame every network-* script runs in: parse, settings, log, report.

``network-bridge|network-route|network-nat start|stop|status [k=v…]
[--dry-run] [--json]``: the command word and ``k=v`` pairs as upstream
parses them (never evaluated), the host's configuration file below the
environment below argv, one log per run, exit 0 or 1. Below the frame, the
steps network-route and network-nat share: set sysctls remembering what they
were, put them back, show them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from ..core.args import merge_inputs, parse_args
from ..core.conf import read_config
from ..core.errors import HotplugError, InputError, internal_error
from ..core.files import read_json, remove_file, write_json
from ..core.log import RunLog, make_log, script_name
from ..netlink.sysctl import apply_sysctls, read_sysctl, restore_sysctls

NETWORK_COMMANDS = ("start", "stop", "status")
FLAGS = ("--dry-run", "--json")


@dataclass
class NetworkRun:
    """One network script run, handed to the script's body."""

    name: str
    command: str
    variables: dict[str, str]
    conf: dict[str, str]
    env: Mapping[str, str]
    log: RunLog
    stdout: TextIO | None
    flags: set[str] = field(default_factory=set)

    @property
    def dry_run(self) -> bool:
        return "--dry-run" in self.flags

    @property
    def json(self) -> bool:
        return "--json" in self.flags

    def print(self, text: str) -> None:
        """Write *text* (a status report, a plan) to the caller's stdout."""
        if self.stdout is not None:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
            self.stdout.flush()


NetworkBody = Callable[[NetworkRun], None]


def run_network_script(argv: list[str], env: Mapping[str, str], stderr: TextIO | None,
                       stdout: TextIO | None, keys: tuple[str, ...], body: NetworkBody) -> int:
    """Run a network script's *body*; *keys* are the variables it reads (conf < env < argv)."""
    name = script_name(argv)
    conf, bad_conf = read_config(env)  # the one read of the host's settings in this run
    log = make_log(argv, env, stderr, conf)
    try:
        words = [a for a in argv[1:] if not a.startswith("--")]
        flags = {a for a in argv[1:] if a.startswith("--")}
        args = parse_args(words)
        if args.command not in NETWORK_COMMANDS:
            _unknown_command(args.command or "", stderr)
            return 1
        bad = sorted(flags - set(FLAGS))
        if bad:
            raise InputError(f"unknown option {bad[0]} (known: {', '.join(FLAGS)})")
        if bad_conf is not None:
            raise bad_conf
        variables = {k: conf[k] for k in keys if k in conf}
        variables.update(merge_inputs(dict(env), args.assignments, keys))
        run = NetworkRun(name=name, command=args.command, variables=variables, conf=conf, env=env,
                         log=log, stdout=stdout, flags=flags)
        log.debug(" ".join(argv[1:]))
        body(run)
        return 0
    except HotplugError as e:
        log.error(str(e))
        return 1
    except Exception as e:  # noqa: BLE001 - a bug is still reported, never a bare traceback
        log.error(internal_error(" ".join([name, *argv[1:2]]), e))
        return 1
    finally:
        log.close()


def _unknown_command(command: str, stderr: TextIO | None) -> None:
    """Upstream's two lines for a command that is not start, stop or status."""
    if stderr is not None:
        stderr.write(f"Unknown command: {command}\nValid commands are: start, stop, status\n")


# ------------------------------------------------------------------ steps network-route and network-nat share
def start_sysctls(run: NetworkRun, wanted: dict[str, str], path: str, **extra: str) -> None:
    """Set *wanted*, remembering in *path* the values they had before the first start (and *extra*)."""
    if run.dry_run:
        for key, value in wanted.items():
            run.print(f"would set net.{key.replace('/', '.')} = {value} (now {read_sysctl(key)})")
        return
    state = read_json(path) or {}
    remembered = apply_sysctls(wanted, state.get("sysctls", {}))
    write_json(path, {**state, **extra, "sysctls": remembered})
    run.log.debug(f"{run.name} start: set {', '.join(sorted(wanted))}; remembered {remembered}")


def stop_sysctls(run: NetworkRun, path: str) -> None:
    """Put back what start changed, then forget it; nothing remembered means nothing to do."""
    state = read_json(path)
    if state is None:
        run.log.debug(f"{run.name} stop: nothing to restore ({path} does not exist)")
        return
    if run.dry_run:
        for key, value in state.get("sysctls", {}).items():
            run.print(f"would set net.{key.replace('/', '.')} = {value}")
        return
    gone = restore_sysctls(state.get("sysctls", {}))
    if gone:
        run.log.debug(f"{run.name} stop: no longer there: {', '.join(gone)}")
    remove_file(path)


def print_sysctl_status(run: NetworkRun, keys: dict[str, str], path: str, **extra: object) -> None:
    """The current values of *keys*, and whether start is in effect (remembered state)."""
    state = read_json(path)
    values = {f"net.{k.replace('/', '.')}": read_sysctl(k) for k in keys}
    report = {"started": state is not None, "sysctls": values,
              "remembered": {f"net.{k.replace('/', '.')}": v for k, v in (state or {}).get("sysctls", {}).items()},
              **extra}
    if run.json:
        run.print(json.dumps(report, indent=1, sort_keys=True))
        return
    lines = [f"{run.name}: {'started' if state is not None else 'not started'}"]
    lines += [f"{k} = {'(none)' if v is None else v}" for k, v in values.items()]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    run.print("\n".join(lines))
