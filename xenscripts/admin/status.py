"""``xenscripts status``: the host's Xen networks and guest NICs, from xenstore and the kernel (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .backends import Nic
from .live import Live
from .ovs import port_status
from .started import StartedNetwork

_WORD_SEPARATORS = re.compile(r'[\s"{},;()]+')
_IPT_POLICY = re.compile(r"^:FORWARD (ACCEPT|DROP)", re.MULTILINE)
_NFT_POLICY = re.compile(r"chain forward \{[^}]*?policy (accept|drop);", re.DOTALL)


def forward_policy(firewall_text: str) -> str:
    """The FORWARD policy the rules show: ``DROP`` when any forward chain drops, else ``ACCEPT``."""
    found = {m.upper() for m in _IPT_POLICY.findall(firewall_text) + _NFT_POLICY.findall(firewall_text)}
    return "DROP" if "DROP" in found else "ACCEPT"


@lru_cache(maxsize=4)
def _words(firewall_text: str) -> frozenset[str]:
    """Every word of the rules (device names among them), split once per listing."""
    return frozenset(_WORD_SEPARATORS.split(firewall_text))


def has_rules_for(firewall_text: str, dev: str) -> bool:
    """True when some rule names *dev* as a whole word (vif1.1 is not vif1.10, nor xs-vif1.1)."""
    return dev in _words(firewall_text)


def has_masquerade(firewall_text: str, netdev: str) -> bool:
    """A MASQUERADE out of *netdev*: iptables' ``-o netdev … -j MASQUERADE`` or our nft set's element."""
    dev = re.escape(netdev)
    return re.search(rf"-o {dev} .*-j MASQUERADE|oifname \"?{dev}\"? .*masquerade|masquerade_out \{{[^}}]*\"{dev}\"",
                     firewall_text) is not None


def nic_firewall(nic: Nic, conf: Mapping[str, str], live: Live) -> dict[str, Any]:
    """The NIC's firewall backend and antispoof (xenstore over the config file) and whether rules exist."""
    backend = nic.firewall or conf.get("firewall") or "auto"
    return {"backend": live.firewall_backend[0] if backend == "auto" else backend,
            "antispoof": nic.antispoof or conf.get("antispoof") or "no",
            "rules": has_rules_for(live.firewall, nic.vif)}


def nic_status(nic: Nic, conf: Mapping[str, str], live: Live) -> dict[str, Any]:
    """One guest NIC: what xenstore asks for beside what the kernel has."""
    link = live.links.get(nic.vif)
    return {
        "domid": nic.domid, "name": nic.name, "devid": nic.devid, "vif": nic.vif,
        "kind": nic.kind, "script": nic.script,
        "bridge": _bridge_of(nic, link, live), "bridge_xenstore": nic.bridge or None,
        "routes": [r.dst for r in live.routes_via(nic.vif)],
        "mac": nic.mac, "vif_mac": link.address if link else None,
        "addresses": nic.ips, "vif_addresses": live.addrs.get(nic.vif, []),
        "mtu": link.mtu if link else None, "mtu_xenstore": nic.mtu or None,
        "present": link is not None, "up": bool(link and link.up),
        "hotplug_status": nic.hotplug_status, "hotplug_error": nic.hotplug_error or None,
        "firewall": nic_firewall(nic, conf, live),
        **({"ovs_port": port_status(nic, live.ovs_ports)} if nic.kind == "openvswitch" else {}),
        **({"vlan": nic.vlan, "port_vlans": {str(vid): flags for vid, flags in live.bridge_vlans.get(nic.vif, {}).items()}}
           if nic.kind == "bridge" and nic.vlan else {}),
    }


def _bridge_of(nic: Nic, link: Any, live: Live) -> str | None:
    if nic.kind == "openvswitch":
        port = live.ovs_ports.get(nic.vif)
        return port.bridge if port is not None else None
    return live.links.master_of(nic.vif) if link else None


def ovs_bridges(live: Live, guest_vifs: set[str]) -> list[dict[str, Any]]:
    """The Open vSwitch bridges our NICs' ports are on, shaped like a Linux bridge's entry (``"ovs": True``)."""
    out = []
    for name in sorted({p.bridge for p in live.ovs_ports.values() if p.bridge}):
        ports = sorted(p.name for p in live.ovs_ports.values() if p.bridge == name and p.name != name)
        link = live.links.get(name)
        out.append({"name": name, "mtu": link.mtu if link else None, "up": bool(link and link.up),
                    "addresses": live.addrs.get(name, []), "ovs": True,
                    "uplinks": [p for p in ports if p not in guest_vifs and not p.startswith("vif")],
                    "vifs": [p for p in ports if p in guest_vifs or p.startswith("vif")]})
    return out


def networks(nics: list[Nic], live: Live, started: Sequence[StartedNetwork] = (),
             dhcp_running: bool = False) -> dict[str, Any]:
    """Bridges (with uplinks and vifs), the routed network and the NAT network (its vifs, what started it)."""
    guest_vifs = {n.vif for n in nics}
    bridges = []
    for name in live.bridges():
        link = live.links[name]
        ports = live.ports(name)
        bridges.append({"name": name, "mtu": link.mtu, "up": link.up, "addresses": live.addrs.get(name, []),
                        "uplinks": [p for p in ports if p not in guest_vifs and not p.startswith("vif")],
                        "vifs": [p for p in ports if p in guest_vifs or p.startswith("vif")]})
    bridges += ovs_bridges(live, guest_vifs)
    out: dict[str, Any] = {"bridges": bridges}
    for kind in ("route", "nat"):
        vifs = [n.vif for n in nics if n.kind == kind]
        netdevs = [s.netdev for s in started if s.kind == kind]
        if not vifs and not netdevs:
            continue
        net: dict[str, Any] = {"vifs": vifs, "started_on": netdevs, "ip_forward": live.sysctls.get("ipv4/ip_forward"),
                               "routes": [{"dst": r.dst, "dev": r.dev} for v in vifs for r in live.routes_via(v)]}
        if kind == "nat":
            net["masquerade"] = [d for d in netdevs if has_masquerade(live.firewall, d)]
            net["dhcp"] = {s.netdev: s.dhcp for s in started if s.kind == "nat"}
            net["dnsmasq_running"] = dhcp_running
        out["routed" if kind == "route" else "nat"] = net
    return out


_NETBACK_NAME = re.compile(r"vif\d+\.\d+(?:-emu)?")


def unknown_vifs(nics: list[Nic], live: Live) -> list[dict[str, Any]]:
    """Links named like netback's vifs (``vif<domid>.<devid>``) that no backend in xenstore has."""
    known = {n.vif for n in nics} | {f"vif{n.domid}.{n.devid}" for n in nics}
    return [{"vif": link.name, "bridge": live.links.master_of(link.name), "mtu": link.mtu, "mac": link.address,
             "up": link.up, "addresses": live.addrs.get(link.name, []),
             "routes": [r.dst for r in live.routes_via(link.name)]}
            for link in sorted(live.links.values(), key=lambda x: x.name)
            if _NETBACK_NAME.fullmatch(link.name) and link.name not in known]


def build_status(nics: list[Nic], live: Live, conf: Mapping[str, str], scripts: list[dict[str, Any]],
                 daemon: dict[str, Any], problems: list[str],
                 started: Sequence[StartedNetwork] = (), dhcp_running: bool = False) -> dict[str, Any]:
    """Everything status reports, as data (``--json`` prints exactly this)."""
    return {
        "networks": networks(nics, live, started, dhcp_running),
        "nics": [nic_status(n, conf, live) for n in nics],
        "unknown_vifs": unknown_vifs(nics, live),
        "firewall": {"backend": conf.get("firewall") or "auto", "auto_picks": live.firewall_backend[0],
                     "why": live.firewall_backend[1], "antispoof": conf.get("antispoof") or "no",
                     "forward_policy": forward_policy(live.firewall)},
        "hotplugd": daemon,
        "scripts": scripts,
        "problems": problems,
    }


def format_ovs_port(port: dict[str, Any] | None) -> str:
    """``ovs ovsbr0 tag 10 trunks 20,30 native-untagged`` (or ``ovs NO PORT``)."""
    if port is None:
        return "ovs NO PORT"
    vlan = ovs_vlans(port)
    return f"ovs {port['bridge']}{' ' + vlan if vlan else ''}"


def ovs_vlans(port: dict[str, Any]) -> str:
    """An OVS port's VLAN columns as words: ``tag 10 trunks 20,30 native-untagged`` ("" for none)."""
    return " ".join([*([f"tag {port['tag']}"] if port["tag"] is not None else []),
                     *([f"trunks {','.join(map(str, port['trunks']))}"] if port["trunks"] else []),
                     *([port["vlan_mode"]] if port["vlan_mode"] else [])])


def nic_vlans(nic: dict[str, Any]) -> str:
    """A guest NIC's VLANs as its port has them (an OVS port's columns, a Linux bridge port's
    ``vlan`` key), "" when it has none."""
    if nic.get("ovs_port"):
        return ovs_vlans(nic["ovs_port"])
    return f"vlan={nic['vlan']}" if nic.get("vlan") else ""


def format_status(status: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = []
    nets = status["networks"]
    lines.append("Networks")
    for b in nets["bridges"]:
        lines.append(f"  {'Open vSwitch bridge' if b.get('ovs') else 'bridge'} {b['name']}  mtu {b['mtu']}  {'up' if b['up'] else 'DOWN'}  "
                     f"{' '.join(b['addresses']) or 'no address'}  uplink {', '.join(b['uplinks']) or 'none'}  "
                     f"vifs {', '.join(b['vifs']) or 'none'}")
    for key, label in (("routed", "routed"), ("nat", "NAT")):
        if key in nets:
            n = nets[key]
            extra = ""
            if key == "nat":
                dhcp = ", ".join(f"dhcp={mode}" for mode in n["dhcp"].values())
                extra = (f"  masquerade out of {', '.join(n['masquerade']) or 'nothing'}  {dhcp}"
                         f"{'  dnsmasq running' if n['dnsmasq_running'] else ''}")
            lines.append(f"  {label}: started on {', '.join(n['started_on']) or 'nothing'}  "
                         f"vifs {', '.join(n['vifs']) or 'none'}  ip_forward={n['ip_forward']}{extra}")
    if len(lines) == 1:
        lines.append("  none")
    lines.append("Guest NICs")
    for n in status["nics"]:
        where = f"bridge {n['bridge'] or 'NONE'}" if n["kind"] == "bridge" else f"routes {', '.join(n['routes']) or 'none'}"
        if n["kind"] == "openvswitch":
            where = format_ovs_port(n.get("ovs_port"))
        elif n.get("vlan"):
            where += f" vlan={n['vlan']} (port: {', '.join(n['port_vlans']) or 'no VLANs'})"
        fw = n["firewall"]
        lines.append(f"  dom{n['domid']} {n['name'] or '?'} devid {n['devid']}: {n['vif']} ({n['kind']}) {where}  "
                     f"mac {n['mac'] or '?'}  ip {' '.join(n['addresses']) or '-'}  mtu {n['mtu'] or '-'}  "
                     f"hotplug-status {n['hotplug_status'] or '-'}  firewall {fw['backend']} "
                     f"antispoof {fw['antispoof']} rules {'yes' if fw['rules'] else 'none'}"
                     f"{'' if n['present'] else '  [no such link]'}")
        if n["hotplug_error"]:
            lines.append(f"      hotplug-error: {n['hotplug_error']}")
    if not status["nics"]:
        lines.append("  none")
    for v in status["unknown_vifs"]:
        lines.append(f"  {v['vif']}: in the kernel, no backend in xenstore  "
                     f"{'bridge ' + v['bridge'] if v['bridge'] else 'on no bridge'}  mtu {v['mtu']}  "
                     f"{'up' if v['up'] else 'down'}")
    fw = status["firewall"]
    auto = f" ({fw['auto_picks']}: {fw['why']})" if fw["backend"] == "auto" else ""
    lines.append(f"Firewall: backend {fw['backend']}{auto}, antispoof {fw['antispoof']}, "
                 f"FORWARD policy {fw['forward_policy']}")
    d = status["hotplugd"]
    state = "running" if d["running"] else "not running (scripts run in-process)"
    lines.append(f"hotplugd: {state}; socket {d['socket']} {'answers' if d['answers'] else 'silent'}"
                 f"{'; pid ' + str(d['pid']) if d['pid'] else ''}; served {d['served']}, "
                 f"median {d['median_ms']}{'' if d['median_ms'] == 'unknown' else ' ms'}")
    metrics = d.get("metrics")
    if metrics:
        for command, outcomes in sorted(metrics["requests"].items()):
            mean = metrics["mean_ms"].get(command)
            lines.append(f"  {command}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) +
                         (f"; mean {mean} ms" if mean is not None else ""))
        lines.append(f"  (counters since hotplugd started, from {metrics['file']})")
    lines.append("Script directory: " + ", ".join(
        f"{s['name']}={s['owner']}" + (" (+.upstream)" if s["kept"] else "") +
        (f" (+{s['dpkg_new'].rsplit('/', 1)[-1]})" if s["dpkg_new"] else "") for s in status["scripts"]))
    for p in status["problems"]:
        lines.append(f"problem: {p}")
    return "\n".join(lines) + "\n"
