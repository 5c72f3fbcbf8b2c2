"""``xenscripts show``: the host's Xen network as Graphviz DOT or a plain-text tree (pure).

Both are drawn from the ``status`` report: physical NICs, bridges, vifs,
guests by name, routed and NAT guests with their addresses, and dom0's
router side. ``render`` runs Graphviz ``dot`` when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from .status import nic_vlans

Status = dict[str, Any]
HEADER = """digraph xen {
  graph [rankdir=LR, fontname="Helvetica", label="Xen networking on this host", labelloc=t];
  node [fontname="Helvetica", fontsize=11];
  edge [fontname="Helvetica", fontsize=9];
  lan [label="physical network", shape=box, style=dashed];
  subgraph cluster_dom0 {
    label="dom0"; style=rounded; color=gray40;"""
NL = "\\n"  # a line break inside a DOT label


def _q(text: str) -> str:
    """A DOT double-quoted string (its ``\\n`` escapes kept)."""
    return '"' + text.replace('"', '\\"') + '"'


def _guest_label(nic: dict[str, Any]) -> str:
    return f"{nic['name'] or 'dom' + str(nic['domid'])}{NL}dom{nic['domid']}"


def _nic_label(nic: dict[str, Any]) -> str:
    parts = [f"eth{nic['devid']}", nic["mac"] or ""]
    parts += nic["addresses"]
    return NL.join(p for p in parts if p)


def _routed_side(status: Status) -> list[dict[str, Any]]:
    return [n for n in status["nics"] if n["kind"] in ("route", "nat")]


def to_dot(status: Status) -> str:
    """The picture as DOT text."""
    nets = status["networks"]
    nics = status["nics"]
    out = HEADER.splitlines()
    routed_netdevs = sorted({d for key in ("routed", "nat") for d in nets.get(key, {}).get("started_on", [])})
    uplinks = sorted({u for b in nets["bridges"] for u in b["uplinks"]} | set(routed_netdevs))
    for u in uplinks:
        out.append(f"    {_q('nic:' + u)} [label={_q(u + NL + '(physical NIC)')}, shape=box, style=filled, "
                   "fillcolor=lightgray];")
    for b in nets["bridges"]:
        kind = ["(Open vSwitch)"] if b.get("ovs") else []
        label = NL.join([b["name"], *kind, *b["addresses"], f"mtu {b['mtu']}"])
        out.append(f"    {_q('br:' + b['name'])} [label={_q(label)}, shape=box, style=\"rounded,filled\", "
                   "fillcolor=lightblue];")
    for n in nics:
        color = "palegreen" if n["hotplug_status"] == "connected" else "lightpink"
        out.append(f"    {_q('vif:' + n['vif'])} [label={_q(n['vif'])}, shape=ellipse, style=filled, "
                   f"fillcolor={color}];")
    for v in status.get("unknown_vifs", []):
        out.append(f"    {_q('vif:' + v['vif'])} [label={_q(v['vif'] + NL + '(no backend)')}, shape=ellipse, "
                   "style=\"filled,dashed\", fillcolor=lightgray];")
    routed = _routed_side(status)
    if routed:
        forward = (nets.get("routed") or nets.get("nat") or {}).get("ip_forward")
        nat = " + NAT" if nets.get("nat", {}).get("masquerade") else ""  # the netdevs it masquerades out of
        ips = sorted({a for n in routed for a in n["vif_addresses"] if ":" not in a})
        label = NL.join([f"dom0 router{nat}", *ips, f"ip_forward={forward}"])
        out.append(f"    router [label={_q(label)}, shape=diamond, style=filled, fillcolor=khaki];")
    out.append("  }")
    for u in uplinks:
        out.append(f"  lan -> {_q('nic:' + u)} [dir=both];")
    for b in nets["bridges"]:
        for u in b["uplinks"]:
            out.append(f"  {_q('nic:' + u)} -> {_q('br:' + b['name'])} [dir=both, label=\"port\"];")
    if routed:
        out += [f"  {_q('nic:' + d)} -> router [dir=both];" for d in routed_netdevs] or \
            ["  lan -> router [dir=both, style=dashed];"]
    for v in status.get("unknown_vifs", []):
        if v["bridge"]:
            out.append(f"  {_q('br:' + v['bridge'])} -> {_q('vif:' + v['vif'])} [dir=both, style=dashed];")
    for n in nics:
        guest = f"dom{n['domid']}"
        if n["bridge"]:
            port = NL.join(["port", nic_vlans(n)]) if nic_vlans(n) else "port"
            out.append(f"  {_q('br:' + n['bridge'])} -> {_q('vif:' + n['vif'])} [dir=both, label={_q(port)}];")
        elif n["kind"] in ("route", "nat"):
            out.append(f"  router -> {_q('vif:' + n['vif'])} [dir=both, label={_q(', '.join(n['routes']))}];")
        out.append(f"  {_q(guest)} [label={_q(_guest_label(n))}, shape=box3d, style=filled, fillcolor=white];")
        out.append(f"  {_q('vif:' + n['vif'])} -> {_q(guest)} [dir=both, label={_q(_nic_label(n))}];")
    out.append("}")
    return "\n".join(dict.fromkeys(out)) + "\n"  # a guest with several NICs is declared once


def to_text(status: Status) -> str:
    """The picture as an indented tree."""
    nets = status["networks"]
    by_vif = {n["vif"]: n for n in status["nics"]}
    lines: list[str] = []

    def nic_line(n: dict[str, Any], indent: str, last: bool) -> str:
        extra = " ".join(n["addresses"])
        routes = f" routes {', '.join(n['routes'])}" if n["routes"] else ""
        vlans = f" {nic_vlans(n)}" if nic_vlans(n) else ""
        return (f"{indent}{'└─' if last else '├─'} {n['vif']} ── {n['name'] or '?'} (dom{n['domid']} "
                f"eth{n['devid']} {n['mac']}{' ' + extra if extra else ''}){vlans}{routes} "
                f"[{n['hotplug_status'] or 'not plugged'}]")

    for b in nets["bridges"]:
        head = f"{b['name']}{' (Open vSwitch)' if b.get('ovs') else ''} {' '.join(b['addresses'])} mtu {b['mtu']}"
        head = head.replace("  ", " ")
        lines.append(f"{', '.join(b['uplinks']) or '(no uplink)'} ══ {head}")
        vifs = [by_vif[v] for v in b["vifs"] if v in by_vif]
        lines += [nic_line(n, "   ", i == len(vifs) - 1) for i, n in enumerate(vifs)]
    routed = _routed_side(status)
    if routed:
        forward = (nets.get("routed") or nets.get("nat") or {}).get("ip_forward")
        ips = "".join(f" {a}" for a in sorted({a for n in routed for a in n["vif_addresses"] if ":" not in a}))
        nat = ", NAT" if nets.get("nat", {}).get("masquerade") else ""
        lines.append(f"dom0 router{ips} (ip_forward={forward}{nat})")
        lines += [nic_line(n, "   ", i == len(routed) - 1) for i, n in enumerate(routed)]
    lines += [f"{v['vif']} (in the kernel, no backend in xenstore; {'bridge ' + v['bridge'] if v['bridge'] else 'on no bridge'})"
              for v in status.get("unknown_vifs", [])]
    loose = [n for n in status["nics"] if not n["bridge"] and n["kind"] not in ("route", "nat")]
    if loose:
        lines.append("on no bridge")
        lines += [nic_line(n, "   ", i == len(loose) - 1) for i, n in enumerate(loose)]
    return "\n".join(lines or ["no Xen networks"]) + "\n"


def have_dot() -> bool:
    return shutil.which("dot") is not None


def render(dot_text: str, fmt: str = "svg") -> bytes:
    """Graphviz's rendering of *dot_text* (``svg``, ``png``)."""
    cp = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=60, check=False)
    if cp.returncode != 0:
        raise OSError(f"dot -T{fmt} failed: {cp.stderr.decode(errors='replace').strip()}")
    return cp.stdout
