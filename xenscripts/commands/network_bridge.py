"""network-bridge (also ``network``): build, tear down and show a host's Xen bridge, as plan then apply.

start observes the netdev, plans every change as data (``kernel.plan``) and
applies it with undo (``kernel.apply``): a failure at any step puts back what
was observed. stop is the exact reverse; status shows what is there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, TextIO

from ..core import request
from ..core.errors import InputError
from ..core.lock import DEFAULT_LOCK_DIR, hotplug_lock
from ..frame.network import NetworkRun, run_network_script
from ..netbridge.plan import Names, Step
from ..netlink.link import Links

USAGE = """\
usage: network-bridge start|stop|status [netdev=DEV] [bridge=NAME] [vifnum=N] [antispoof=yes|no]
       [vlan=ID] [tx_offload=off] [force=yes] [--dry-run] [--json]
Bridge the host's NIC for Xen guests: the bridge takes the NIC's MAC, MTU,
addresses and routes (every table), and any failure puts everything back.
netdev defaults to the default route's device (else eth0); bridge to the
netdev's own name (the NIC is then renamed p<netdev>); vifnum=N means
netdev=ethN bridge=xenbrN; bridge=null does nothing. With no netdev/bridge/
vifnum, the bridges= pairs of /etc/xen/xenscripts.conf are each handled.
--dry-run prints the plan and changes nothing; --json prints it as JSON."""

KEYS = ("netdev", "bridge", "vifnum", "antispoof", "vlan", "tx_offload", "force", "firewall")
_NAMING = ("netdev", "bridge", "vifnum")


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """network-bridge start|stop|status [k=v…] [--dry-run] [--json]."""
    return run_network_script(argv, env, stderr, stdout, KEYS, _body)


def _body(run: NetworkRun) -> None:
    lock_dir = run.env.get("XENSCRIPTS_LOCK_DIR") or DEFAULT_LOCK_DIR
    for variables in each_bridge(run.variables, run.conf, run.command == "stop"):
        # upstream's lock name, so our start and upstream's never interleave; bounded by the call's deadline
        with hotplug_lock("network-bridge", lock_dir, timeout=max(0.1, request.current().time_left())):
            _one_bridge(run, variables)


def each_bridge(variables: dict[str, str], conf: Mapping[str, str], stopping: bool) -> list[dict[str, str]]:
    """One variable set per bridge: as given, or one per ``bridges=`` pair of the config file (stop in reverse)."""
    pairs = (conf.get("bridges") or "").replace(",", " ").split()
    if not pairs or any(variables.get(k) for k in _NAMING):
        return [variables]
    out = []
    for pair in pairs:
        bridge, netdev = pair.split(":", 1)
        out.append({**variables, "bridge": bridge, "netdev": netdev})
    return out[::-1] if stopping else out


def _one_bridge(run: NetworkRun, variables: dict[str, str]) -> None:
    from pyroute2 import IPRoute

    from ..netbridge.observe import observe_links
    from ..netbridge.plan import resolve_names

    with IPRoute() as ipr:
        links = observe_links(ipr)
        names = resolve_names(variables, links)
        if names is None:
            run.log.debug("bridge=null: nothing to do")
            return
        if run.command == "start":
            _start(run, ipr, links, names, variables)
        elif run.command == "stop":
            _stop(run, ipr, links, names, variables)
        else:
            _status(run, ipr, links, names)


def _yes(variables: dict[str, str], key: str) -> bool:
    value = variables.get(key) or "no"
    if value not in ("yes", "no"):
        raise InputError(f"invalid {key} {value!r}: expected yes or no")
    return value == "yes"


def _tx_offload_off(variables: dict[str, str]) -> bool:
    value = variables.get("tx_offload") or "on"
    if value not in ("on", "off"):
        raise InputError(f"invalid tx_offload {value!r}: expected on or off")
    return value == "off"


def _start(run: NetworkRun, ipr: Any, links: Links, names: Names, variables: dict[str, str]) -> None:
    from ..netbridge import plan as p
    from ..netbridge.observe import observe_netdev

    antispoof, tx_off = _yes(variables, "antispoof"), _tx_offload_off(variables)
    if p.already_started(names, links):
        run.log.info(f"bridge {names.bridge} already holds {names.nic}; nothing to do")
        _show_plan(run, [], f"bridge {names.bridge} already holds {names.nic}: nothing to do")
        return
    p.refuse_start(names, links)
    if _network_root_through(ipr, names.parent or names.netdev, links):
        from ..netbridge.nfsroot import REFUSAL

        run.log.error(REFUSAL)
        return
    netdev = observe_netdev(ipr, links, names.netdev) if names.netdev in links.by_name else None
    parent = challenged = None
    if netdev is None and names.parent is not None:
        from ..netlink.ethtool import VLAN_CHALLENGED, has_feature

        parent = observe_netdev(ipr, links, names.parent)
        challenged = has_feature(names.parent, VLAN_CHALLENGED)
    facts = p.StartFacts(links=links, netdev=netdev, parent=parent, vlan_challenged=bool(challenged),
                         tx_offload_off=tx_off, antispoof=antispoof)
    steps = p.plan_start(names, facts)
    if _show_plan(run, steps, f"start {names.bridge} on {names.nic}"):
        return
    _apply(run, ipr, steps)
    run.log.debug(f"bridge {names.bridge} up with {names.nic}")


def _stop(run: NetworkRun, ipr: Any, links: Links, names: Names, variables: dict[str, str]) -> None:
    from ..netbridge import plan as p
    from ..netbridge.observe import observe_netdev

    bridge, nic = links.by_name.get(names.bridge), links.by_name.get(names.nic)
    if bridge is None or not bridge.is_bridge or nic is None or links.master_of(names.nic) != names.bridge:
        run.log.debug(f"bridge {names.bridge} does not hold {names.nic}; nothing to stop")
        _show_plan(run, [], f"bridge {names.bridge} does not hold {names.nic}: nothing to stop")
        return
    nic_state = observe_netdev(ipr, links, names.nic)
    created_vlan = names.vlan is not None and nic.alias == p.VLAN_ALIAS
    facts = p.StopFacts(bridge=observe_netdev(ipr, links, names.bridge), nic=nic_state,
                        force=_yes(variables, "force"), delete_vlan=created_vlan,
                        tx_offload_off=_tx_offload_off(variables), antispoof=_yes(variables, "antispoof"))
    steps = p.plan_stop(names, facts)
    if _show_plan(run, steps, f"stop {names.bridge} on {names.nic}"):
        return
    _apply(run, ipr, steps)
    run.log.debug(f"bridge {names.bridge} removed, {names.netdev} restored")


def _show_plan(run: NetworkRun, steps: list[Step], title: str) -> bool:
    """With --dry-run, print the plan (text or JSON) and return True: nothing is applied."""
    from ..netbridge.plan import plan_json, plan_text

    if not run.dry_run:
        return False
    if run.json:
        run.print(json.dumps({"plan": title, "steps": plan_json(steps)}, indent=2))
    else:
        run.print(f"{run.name} {title}:" + ("\n" + plan_text(steps) if steps else " nothing to do"))
    return True


def _apply(run: NetworkRun, ipr: Any, steps: list[Step]) -> None:
    from .. import firewall
    from ..core.files import state_dir
    from ..netbridge.apply import Applier, apply_plan

    settings = firewall.settings_from({**run.variables, "antispoof": "yes",
                                       "state_dir": state_dir(run.env, run.conf)})

    def rules(starting: bool, nic: str, bridge: str) -> None:
        firewall.update_network_rules("bridge", nic, bridge, starting, settings, run.log)

    apply_plan(Applier(ipr, rules), steps, run.log.error)


def _network_root_through(ipr: Any, netdev: str, links: Links) -> bool:
    """True when / is on a network file system whose server is reached through *netdev*."""
    from ..netbridge.nfsroot import network_root

    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            mounts = f.read()
        with open("/proc/cmdline", encoding="utf-8") as f:
            cmdline = f.read()
    except OSError:
        return False
    on_network, server = network_root(mounts, cmdline)
    if not on_network:
        return False
    if server is None:
        return True
    try:
        oif = ipr.route("get", dst=server)[0].get_attr("RTA_OIF")
    except Exception:  # noqa: BLE001 - a name or an unreachable server: be careful, refuse
        return True
    return any(link.index == oif and link.name == netdev for link in links.by_name.values())


def _status(run: NetworkRun, ipr: Any, links: Links, names: Names) -> None:
    from ..netbridge.observe import observe_netdev

    report: dict[str, Any] = {"bridge": names.bridge, "nic": names.nic, "netdev": names.netdev,
                              "started": False}
    bridge = links.by_name.get(names.bridge)
    if bridge is not None and bridge.is_bridge:
        state = observe_netdev(ipr, links, names.bridge)
        report.update(started=links.master_of(names.nic) == names.bridge, mac=state.link.address,
                      mtu=state.link.mtu, up=state.link.up, ports=list(state.ports),
                      addresses=[asdict(a) for a in state.addresses if a.movable],
                      routes=[asdict(r) for r in state.routes if r.movable])
    if run.json:
        run.print(json.dumps(report, indent=2))
    else:
        run.print(status_text(report))


def status_text(report: dict[str, Any]) -> str:
    """The readable status: bridge, NIC, addresses, routes, ports."""
    from ..netbridge.observe import Address, Route

    if not report["started"] and "ports" not in report:
        return f"bridge {report['bridge']}: not started ({report['nic']} is not bridged)"
    state = "started" if report["started"] else f"present, without {report['nic']}"
    lines = [(f"bridge {report['bridge']}: {state}, {'up' if report['up'] else 'down'}, "
             f"MAC {report['mac']}, MTU {report['mtu']}"),
             f"  nic:       {report['nic']}",
             f"  ports:     {' '.join(report['ports']) or '(none)'}"]
    lines += [f"  address:   {Address(**a).cidr()}" for a in report["addresses"]]
    lines += [f"  route:     {Route(**r).describe()}" for r in report["routes"]]
    return "\n".join(lines)
