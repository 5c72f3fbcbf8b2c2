"""The read-side verbs (status, check, show): gather the host's state once, then hand it to a pure module."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from ..core.conf import ConfigError, load_config, setting
from ..core.files import DEFAULT_STATE_DIR
from ..core.lock import DEFAULT_LOCK_DIR
from ..entry import wire
from ..netlink.sysctl import read_sysctl
from ..xen.hooks import DEFAULT_SCRIPT_DIR
from .backends import Nic, load_nics
from .components import Component, component_drifts, components, format_components
from .drift import Desired, Drift, find_drifts
from .hotplugd import daemon_state
from .live import Live, read_live
from .ovs import read_ovs_ports
from .scriptdir import script_dir_state
from .started import StartedNetwork, read_started
from .venv import HOST_PYTHON, python_version, venv_mismatch
from .vlans import read_bridge_vlans

DEFAULT_VENV = "/opt/xenscripts/venv"
LOCK_MIN_AGE = 2.0  # seconds: younger lock files may belong to a waiter about to flock them


@dataclass
class Host:
    """One snapshot of everything the admin verbs look at."""

    nics: list[Nic]
    live: Live
    conf: dict[str, str]
    script_dir: str
    started: list[StartedNetwork]
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
    started = read_started(setting(env, conf, "state_dir", DEFAULT_STATE_DIR))
    live = read_live()
    live.ovs_ports, why = read_ovs_ports(env, conf, nics)
    live.bridge_vlans = read_bridge_vlans(nics, live)
    if why:
        problems.append(why)
    for key in {k for net in started for k in net.sysctls}:
        value = read_sysctl(key)
        if value is not None:
            live.sysctls[key] = value
    return Host(nics=nics, live=live, conf=conf, script_dir=script_dir, started=started, problems=problems)


def _samples(path: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each ``xenscripts_*`` sample in a metrics file; empty when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        name, brace, rest = line.partition("{")
        if not brace or not name.startswith("xenscripts_"):
            continue
        labels, _, value = rest.partition("} ")
        out.append((name, {k: v.strip('"') for k, _, v in (part.partition("=") for part in labels.split(","))},
                    float(value)))
    return out


def read_counts(path: str) -> dict[tuple[str, str], int]:
    """``(command, outcome) -> n`` from a metrics file (for ``xenscripts status``); empty when unreadable."""
    return {(labels["command"], labels["outcome"]): int(value)
            for name, labels, value in _samples(path) if name == "xenscripts_requests_total"}


def metrics_counts(path: str) -> dict | None:
    """hotplugd's counters and mean times from ``metrics_file``, None when off.

    ``{"file", "requests": {command: {outcome: n}}, "mean_ms": {command: ms}}``.
    """
    if not path:
        return None
    out: dict[str, dict[str, int]] = {}
    for (command, outcome), n in read_counts(path).items():
        out.setdefault(command, {})[outcome] = n
    sums: dict[str, float] = {}
    runs: dict[str, float] = {}
    for name, labels, value in _samples(path):
        if name == "xenscripts_request_seconds_sum":
            sums[labels["command"]] = value
        elif name == "xenscripts_request_seconds_count":
            runs[labels["command"]] = value
    mean = {command: round(1000 * sums[command] / n, 1) for command, n in runs.items() if n and command in sums}
    return {"file": path, "requests": out, "mean_ms": mean}


def status_report(env: Mapping[str, str]) -> dict:
    """The status report, as data."""
    from .status import build_status

    host = gather(env)
    daemon = daemon_state(setting(env, host.conf, "socket", wire.DEFAULT_SOCKET), env)
    daemon["metrics"] = metrics_counts(setting(env, host.conf, "metrics_file", ""))
    report = build_status(host.nics, host.live, host.conf, script_dir_state(host.script_dir), daemon,
                          host.problems, host.started,
                          dnsmasq_running(setting(env, host.conf, "state_dir", DEFAULT_STATE_DIR)))
    report["components"] = [c.as_dict() for c in host_components(host, env)]
    return report


def vif_firewall(text: str, vif: str, mac: str | None) -> list[str]:
    """The rule lines of *text* (nft list ruleset + iptables-save) naming *vif* or its MAC, as words."""
    import re

    names = [re.escape(vif)] + ([re.escape(mac.lower())] if mac else [])
    pattern = re.compile(rf"(?<![\w.:])(?:{'|'.join(names)})(?![\w.:-])", re.IGNORECASE)  # xs-vif1.0 too
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


def vif_status(env: Mapping[str, str], vif: str, as_json: bool, stdout: TextIO, stderr: TextIO) -> int:
    """``status --vif``: one guest NIC, what its online recorded, and every rule naming it; exit 1 if unknown."""
    from ..firewall import record
    from .status import nic_status

    host = gather(env)
    nic = next((n for n in host.nics if vif in (n.vif, f"vif{n.domid}.{n.devid}")), None)
    if nic is None:
        known = ", ".join(sorted(n.vif for n in host.nics)) or "none"
        stderr.write(f"xenscripts: no guest NIC {vif} in xenstore (known: {known})\n")
        return 1
    entry = nic_status(nic, host.conf, host.live)
    remembered = record.load(setting(env, host.conf, "state_dir", DEFAULT_STATE_DIR), nic.vif)
    report: dict[str, Any] = {"nic": entry, "record": None if remembered is None else
              {"backend": remembered[0], "antispoof": remembered[1].antispoof, "ips": list(remembered[1].vif.ips),
               "mac": remembered[1].vif.mac},
              "rules": vif_firewall(host.live.firewall, nic.vif, entry.get("mac"))}
    if as_json:
        stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    fw = entry["firewall"]
    stdout.write(f"{nic.vif}: dom{entry['domid']} devid {entry['devid']} {entry['kind']}  mac {entry['mac'] or '?'}  "
                 f"ip {' '.join(entry['addresses']) or '-'}  hotplug-status {entry['hotplug_status'] or '-'}\n")
    stdout.write(f"firewall: backend {fw['backend']}, antispoof {fw['antispoof']}; ")
    rec = report["record"]
    stdout.write("online recorded nothing\n" if rec is None else
                 f"online recorded backend {rec['backend']}, antispoof {'yes' if rec['antispoof'] else 'no'}, "
                 f"addresses {' '.join(rec['ips']) or '-'}\n")
    stdout.write(f"rules naming {nic.vif}" + (f" or {entry['mac']}" if entry["mac"] else "") + ":\n")
    stdout.write("".join(f"  {line}\n" for line in report["rules"]) or "  none\n")
    return 0


def host_components(host: Host, env: Mapping[str, str]) -> list[Component]:
    return components(env, host.conf, host.live.firewall_backend[0], host.started)


def status(env: Mapping[str, str], as_json: bool, stdout: TextIO) -> int:
    from .status import format_status

    report = status_report(env)
    if as_json:
        stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    stdout.write(format_status(report))
    stdout.write(format_components(report["components"]))
    return 0


SUFFIX_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".txt": "text"}


def show(env: Mapping[str, str], fmt: str | None, output: str | None, stdout: TextIO, stderr: TextIO) -> int:
    """Draw the host's Xen network; SVG needs Graphviz, else DOT text and a plain-text tree."""
    from .picture import have_dot, render, to_dot, to_text

    if fmt is None and output:
        fmt = SUFFIX_FORMATS.get(os.path.splitext(output)[1])
    fmt = fmt or ("svg" if have_dot() else "text")
    report = status_report(env)
    if fmt in ("svg", "png") and not have_dot():
        stderr.write("xenscripts: Graphviz 'dot' is not installed (apt install graphviz): "
                     "DOT text and a plain-text tree instead\n")
        data = (to_dot(report) + "\n" + to_text(report)).encode()
    elif fmt in ("svg", "png"):
        data = render(to_dot(report), fmt)
    else:
        data = (to_dot(report) if fmt == "dot" else to_text(report)).encode()
    if output:
        with open(output, "wb") as f:
            f.write(data)
        stdout.write(f"wrote {output}\n")
    else:
        stdout.write(data.decode(errors="replace"))
    return 0


def stale_locks(lock_dir: str, now: float | None = None) -> list[str]:
    """Lock files in *lock_dir* that no process holds (upstream's holders remove theirs on release)."""
    now = time.time() if now is None else now
    try:
        names = sorted(os.listdir(lock_dir))
    except OSError:
        return []
    stale = []
    for name in names:
        path = os.path.join(lock_dir, name)
        try:
            if not os.path.isfile(path) or now - os.stat(path).st_mtime < LOCK_MIN_AGE:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.append(path)
        except OSError:
            pass  # held: a script is running
        finally:
            os.close(fd)
    return stale


def dnsmasq_running(state_dir: str) -> bool:
    """network-nat dhcp=yes's dnsmasq runs (its pid file in the state directory names a live dnsmasq)."""
    from ..dhcp.dnsmasq import DnsmasqFiles, running_pid

    return running_pid(DnsmasqFiles.under(state_dir)) is not None


def our_venv(env: Mapping[str, str]) -> str | None:
    """The venv our entry points run from: this one, or the default install's."""
    if env.get("XENSCRIPTS_VENV"):
        return env["XENSCRIPTS_VENV"]
    if sys.prefix != sys.base_prefix:
        return sys.prefix
    return DEFAULT_VENV if os.path.isdir(DEFAULT_VENV) else None


def missing_protection(state_dir: str) -> dict[str, list[str]]:
    """Per vif with a firewall record: what of it the kernel lost (nothing to import when no vif has one)."""
    if not os.path.isdir(os.path.join(state_dir, "firewall")):
        return {}
    from ..firewall import missing_protection as missing

    return missing(state_dir)


def desired_state(host: Host, env: Mapping[str, str]) -> Desired:
    """What the host should look like: xenstore's NICs, the config file, the installation."""
    pairs = [(b, n) for b, _, n in (p.partition(":") for p in host.conf.get("bridges", "").replace(",", " ").split())]
    venv = our_venv(env)
    return Desired(nics=host.nics, firewall=host.conf.get("firewall") or "auto", bridges=pairs, started=host.started,
                   dhcp_running=dnsmasq_running(setting(env, host.conf, "state_dir", DEFAULT_STATE_DIR)),
                   scripts=script_dir_state(host.script_dir),
                   stale_locks=stale_locks(env.get("XENSCRIPTS_LOCK_DIR") or DEFAULT_LOCK_DIR),
                   venv_problem=venv_mismatch(venv, python_version(HOST_PYTHON)) if venv else None,
                   problems=host.problems,
                   protection=missing_protection(setting(env, host.conf, "state_dir", DEFAULT_STATE_DIR)))


def _print_drifts(drifts: list[Drift], stdout: TextIO) -> None:
    stdout.writelines(f"DRIFT {d.kind} {d.subject}: {d.detail}{f'  [--fix: {d.fix}]' if d.fix else ''}\n"
                      for d in drifts)
    if not drifts:
        stdout.write("OK: the host is as xenstore and the configuration say\n")


CHECK_FORMAT = 1  # check --json's layout (docs/admin.md, "Many hosts"); raised only when a field changes meaning


def check(env: Mapping[str, str], as_json: bool, fix: bool, stdout: TextIO, stderr: TextIO) -> int:
    """Name every drift; with *fix*, repair what can be repaired and check again. 1 when any is left."""
    from .fix import apply_fixes

    host = gather(env)
    drifts = find_drifts(desired_state(host, env), host.live) + component_drifts(host_components(host, env))
    fixed: list[str] = []
    before = drifts
    if fix and any(d.fix for d in drifts):
        fixed = apply_fixes(drifts, host.nics, host.conf, env, stderr)
        host = gather(env)
        drifts = find_drifts(desired_state(host, env), host.live) + component_drifts(host_components(host, env))
    if as_json:
        stdout.write(json.dumps({"format": CHECK_FORMAT, "drifts": [d.as_dict() for d in drifts],
                                 "found": [d.as_dict() for d in before] if fix else None,
                                 "fixed": fixed if fix else None}, indent=2) + "\n")
    else:
        if fix:
            _print_drifts(before, stdout)
            stdout.writelines(f"FIXED {line}\n" for line in fixed)
            stdout.write("after --fix:\n")
        _print_drifts(drifts, stdout)
    return 1 if drifts else 0


def run_verb(opts: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    """Dispatch status, check, show."""
    if opts.verb == "status":
        if getattr(opts, "vif", None):
            return vif_status(env, opts.vif, opts.json, stdout, stderr)
        return status(env, opts.json, stdout)
    if opts.verb == "check":
        return check(env, opts.json, opts.fix, stdout, stderr)
    return show(env, opts.format, opts.output, stdout, stderr)
