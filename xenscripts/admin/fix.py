"""``xenscripts check --fix``: repair each drift the way its ``fix`` says, with our own commands."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from typing import TextIO

from ..commands import COMMANDS, run_command
from .backends import Nic
from .drift import ONLINE, REMOVE_LOCK, REMOVE_ROUTE, REMOVE_RULES, START_NETWORK, Drift

# What an admin run passes on to the scripts it starts (tests point these at the simulated host).
PASS_ON = ("PATH", "XENSTORED_PATH")


def libxl_env(nic: Nic, env: Mapping[str, str]) -> dict[str, str]:
    """The environment libxl gives a vif script for *nic* (libxl_linux.c), plus our settings."""
    out = {k: v for k, v in env.items() if k in PASS_ON or k.startswith("XENSCRIPTS_")}
    out.update({"script": nic.script, "XENBUS_TYPE": "vif", "XENBUS_BASE_PATH": "backend",
                "XENBUS_PATH": f"backend/vif/{nic.domid}/{nic.devid}", "netdev": nic.gatewaydev,
                "vif": f"vif{nic.domid}.{nic.devid}"})
    return out


def rerun_online(nic: Nic, env: Mapping[str, str], stderr: TextIO) -> str:
    """Our vif script's ``online`` for *nic*, with libxl's argv and environment."""
    name = os.path.basename(nic.script) or "vif-bridge"
    if name not in COMMANDS:
        return f"{nic.vif}: its script {nic.script} is not ours; not re-run"
    status = run_command(name, [name, "online", "type_if=vif"], libxl_env(nic, env), stderr)
    return f"{nic.vif}: {name} online exited {status}"


def remove_rules(dev: str, conf: Mapping[str, str], env: Mapping[str, str], stderr: TextIO) -> str:
    """Delete every firewall rule of the vanished *dev*, through the firewall layer."""
    from ..core.files import state_dir
    from ..core.log import make_log
    from ..firewall import VifFirewall, settings_from, update_vif_rules

    log = make_log(["xenscripts"], env, stderr, conf)
    try:
        for kind in ("bridge", "route", "nat"):
            update_vif_rules(VifFirewall(dev=dev, kind=kind), False,
                             settings_from({**conf, "state_dir": state_dir(env, conf)}), log)
    finally:
        log.close()
    return f"{dev}: firewall rules removed"


def remove_route(dst: str, dev: str) -> str:
    from ..netlink.link import Net

    with Net() as net:
        link = net.link(dev)
        if link is not None:
            # scope "nowhere" matches a route of any scope, as ``ip route del`` does
            net.ipr.route("del", dst=dst, oif=link.index, table=254, scope=255)
    return f"route {dst} dev {dev} removed"


def remove_lock(path: str) -> str:
    """Remove a lock file no one holds (checked again under our own flock)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"{path}: already gone"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            os.unlink(path)
    except OSError as e:
        return f"{path}: not removed ({e})"
    finally:
        os.close(fd)
    return f"{path}: removed"


def start_network(arg: str, env: Mapping[str, str], stderr: TextIO) -> str:
    """``network-<kind> start`` again; *arg* is the script's name and its ``k=v`` words."""
    name, *words = arg.split()
    argv = [name, "start", *words]
    passed = {k: v for k, v in env.items() if k in PASS_ON or k.startswith("XENSCRIPTS_")}
    status = run_command(name, argv, passed, stderr)
    return f"{' '.join(argv)} exited {status}"


def apply_fixes(drifts: list[Drift], nics: list[Nic], conf: Mapping[str, str], env: Mapping[str, str],
                stderr: TextIO) -> list[str]:
    """Repair what can be repaired; one line per action. Each NIC is brought online once."""
    by_key = {(n.domid, n.devid): n for n in nics}
    done: set[object] = set()
    out = []
    for d in drifts:
        token = (d.fix, d.nic or d.arg)
        if not d.fix or token in done:
            continue
        done.add(token)
        try:
            out.append(_fix_one(d, by_key, conf, env, stderr))
        except Exception as e:  # noqa: BLE001 - one failed repair must not stop the others
            out.append(f"{d.subject}: {d.fix} failed: {e}")
    return out


def _fix_one(d: Drift, by_key: Mapping[tuple[int, int], Nic], conf: Mapping[str, str], env: Mapping[str, str],
             stderr: TextIO) -> str:
    if d.fix == ONLINE and d.nic is not None and d.nic in by_key:
        return rerun_online(by_key[d.nic], env, stderr)
    if d.fix == REMOVE_RULES:
        return remove_rules(d.arg, conf, env, stderr)
    if d.fix == REMOVE_ROUTE:
        return remove_route(d.arg, d.subject)
    if d.fix == REMOVE_LOCK:
        return remove_lock(d.arg)
    if d.fix == START_NETWORK:
        return start_network(d.arg, env, stderr)
    return f"{d.subject}: nothing to do for {d.fix}"
