"""The read-side verbs (status, check, show): gather the host's state once, then hand it to a pure module."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from .. import wire
from ..conf import ConfigError, load_config, setting
from .backends import Nic, load_nics
from .hotplugd import daemon_state
from .live import Live, read_live
from .scriptdir import script_dir_state

DEFAULT_SCRIPT_DIR = "/etc/xen/scripts"


@dataclass
class Host:
    """One snapshot of everything the admin verbs look at."""

    nics: list[Nic]
    live: Live
    conf: dict[str, str]
    script_dir: str
    problems: list[str]


def gather(env: Mapping[str, str]) -> Host:
    """Read xenstore, the kernel (this network namespace) and the config file."""
    problems = []
    try:
        conf = load_config(env)
    except ConfigError as e:
        conf = {}
        problems.append(str(e))
    nics, why = load_nics(env)
    if why:
        problems.append(why)
    script_dir = setting(env, conf, "script_dir", DEFAULT_SCRIPT_DIR)
    return Host(nics=nics, live=read_live(), conf=conf, script_dir=script_dir, problems=problems)


def status(env: Mapping[str, str], as_json: bool, stdout: TextIO) -> int:
    from .status import build_status, format_status

    host = gather(env)
    daemon = daemon_state(setting(env, host.conf, "socket", wire.DEFAULT_SOCKET))
    report = build_status(host.nics, host.live, host.conf, script_dir_state(host.script_dir), daemon,
                          host.problems)
    stdout.write(json.dumps(report, indent=2) + "\n" if as_json else format_status(report))
    return 0


def run_verb(opts: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    """Dispatch status, check, show."""
    if opts.verb == "status":
        return status(env, opts.json, stdout)
    stderr.write(f"xenscripts: {opts.verb}: not built yet\n")
    return 1
