"""``xenscripts check``: desired state against live state, each difference named (pure).

Desired: the NICs xenstore says our scripts connected, the bridges of the
config file, the script directory and the venv. Live: ``live.Live``. The
result is a list of ``Drift``; each says how ``--fix`` repairs it (re-run
``online`` for the NIC, remove a leftover) or that only the admin can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .backends import Nic
from .live import Live
from .ovs import port_problems
from .started import StartedNetwork
from .status import has_masquerade, has_rules_for
from .vlans import vlan_problems

# How --fix repairs a drift.
ONLINE = "online"                 # re-run our vif script's online for the NIC (idempotent)
REMOVE_RULES = "remove-rules"     # delete the firewall rules of a vif that is gone
REMOVE_ROUTE = "remove-route"
REMOVE_LOCK = "remove-lock"
START_NETWORK = "network-start"   # re-run network-<kind> start (a configured bridge, a started route/NAT)
MANUAL = ""                       # the admin decides (the message says how)

_VIF_NAME = re.compile(r"(?<![\w.])vif\d+\.\d+(?:-emu)?(?![\w.])")
# Our firewall's per-vif chains (xs-<dev>) name renamed vifs too; xsnet-<netdev> is a network's.
_OUR_CHAIN = re.compile(r"(?<![\w.-])xs-([A-Za-z0-9_.@+=%-]{1,15})(?![\w.@+=%-])")


@dataclass(frozen=True)
class Drift:
    kind: str
    subject: str
    detail: str
    fix: str = MANUAL
    nic: tuple[int, int] | None = None   # (domid, devid) for ONLINE
    arg: str = ""                        # the route's destination, the lock's path…

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail, "fix": self.fix or None}


@dataclass
class Desired:
    nics: list[Nic] = field(default_factory=list)
    firewall: str = "auto"    # the config file's firewall= (a NIC's own xenstore key overrides it)
    bridges: list[tuple[str, str]] = field(default_factory=list)   # config ``bridges=xenbr0:eth0``
    started: list[StartedNetwork] = field(default_factory=list)     # network-route/nat state files
    dhcp_running: bool = False                                      # network-nat dhcp=yes's dnsmasq runs
    scripts: list[dict[str, object]] = field(default_factory=list)  # scriptdir.script_dir_state()
    stale_locks: list[str] = field(default_factory=list)
    venv_problem: str | None = None
    problems: list[str] = field(default_factory=list)               # config file, xenstore
    protection: dict[str, list[str]] = field(default_factory=dict)  # vif -> what of its recorded rules is gone


def find_drifts(desired: Desired, live: Live) -> list[Drift]:
    """Every difference between *desired* and *live*, in a stable order."""
    drifts = [Drift("problem", "host", p) for p in desired.problems]
    for nic in desired.nics:
        drifts += nic_drifts(nic, live, desired.firewall, desired.protection.get(nic.vif, []))
    drifts += bridge_drifts(desired.bridges, live)
    drifts += started_drifts(desired.started, live, desired.dhcp_running)
    drifts += forwarding_drifts(desired, live)
    drifts += leftover_drifts(desired.nics, live)
    drifts += [Drift("stale-lock", path, f"lock {path} is held by no one", REMOVE_LOCK, arg=path)
               for path in desired.stale_locks]
    for row in desired.scripts:
        if row["owner"] == "ours" and row["dpkg_new"]:
            drifts.append(Drift("dpkg-new", str(row["name"]),
                                f"{row['dpkg_new']} (a newer upstream {row['name']} from a package upgrade) "
                                "sits beside ours: compare it, then 'xenscripts uninstall' takes it, or remove it"))
    if desired.venv_problem:
        drifts.append(Drift("venv-python", "venv", desired.venv_problem))
    return drifts


def nic_drifts(nic: Nic, live: Live, firewall: str = "auto", unprotected: list[str] | None = None) -> list[Drift]:
    """What is wrong with one guest NIC our script connected (or failed to)."""
    key = (nic.domid, nic.devid)
    who = f"{nic.vif} (dom{nic.domid} {nic.name or '?'} devid {nic.devid})"
    if nic.hotplug_status == "error":
        return [Drift("hotplug-error", nic.vif, f"{who}: hotplug-error: {nic.hotplug_error or '?'}", ONLINE, key)]
    if not nic.connected:
        return []
    link = live.links.get(nic.vif)
    netback_name = f"vif{nic.domid}.{nic.devid}"
    if link is None and nic.vif != netback_name and netback_name in live.links:
        return [Drift("vif-name", nic.vif, f"{who} is still called {netback_name}", ONLINE, key)]
    if link is None:
        return [Drift("vif-missing", nic.vif, f"{who}: xenstore says connected but there is no such link")]
    out = []
    if not link.up:
        out.append(Drift("vif-down", nic.vif, f"{who} is down", ONLINE, key))
    if nic.kind == "bridge":
        bridges = live.bridges()
        want = nic.bridge or (bridges[0] if bridges else "")
        if want not in live.links:
            out.append(Drift("bridge-missing", nic.vif, f"{who}: its bridge {want or '(any)'} does not exist"))
            return out
        master = live.links.master_of(nic.vif)
        if master != want:
            out.append(Drift("vif-off-bridge", nic.vif,
                             f"{who} is {'a port of ' + master if master else 'on no bridge'}, "
                             f"not of {want}", ONLINE, key))
        out += [Drift(kind, nic.vif, f"{who}: {detail}", ONLINE, key) for kind, detail in vlan_problems(nic, live)]
        want_mtu = int(nic.mtu) if nic.mtu.isdigit() else live.links[want].mtu
        if link.mtu != want_mtu:
            out.append(Drift("mtu", nic.vif, f"{who} has MTU {link.mtu}, wants {want_mtu}", ONLINE, key))
    elif nic.kind in ("route", "nat"):
        out += _routed_drifts(nic, live, who, key)
    elif nic.kind == "openvswitch":  # its frames never cross netfilter: no rules to look for
        return out + [Drift(kind, nic.vif, f"{who}: {detail}", ONLINE, key)
                      for kind, detail in port_problems(nic, live.ovs_ports)]
    if (nic.firewall or firewall) != "none" and not has_rules_for(live.firewall, nic.vif):
        out.append(Drift("rules-missing", nic.vif, f"{who}: no firewall rule names it "
                                                   f"(firewall={nic.firewall or firewall})", ONLINE, key))
    if unprotected and not any(d.kind == "rules-missing" for d in out):  # some of what its online installed
        out.append(Drift("protection-missing", nic.vif, f"{who}: its firewall protection is gone "
                                                        f"({'; '.join(unprotected[:3])}"
                                                        f"{f'; {len(unprotected) - 3} more' if len(unprotected) > 3 else ''})",
                         ONLINE, key))
    return out


def _routed_drifts(nic: Nic, live: Live, who: str, key: tuple[int, int]) -> list[Drift]:
    out = []
    if not any(":" not in a for a in live.addrs.get(nic.vif, [])):
        out.append(Drift("address-missing", nic.vif, f"{who} has no IPv4 address (dom0's side of the route)",
                         ONLINE, key))
    have = {r.dst for r in live.routes_via(nic.vif)}
    for ip in guest_addresses(nic):
        dst = ip if "/" in ip else f"{ip}/32"
        if ":" not in ip and dst not in have:
            out.append(Drift("route-missing", nic.vif, f"{who}: no route to {dst} through it", ONLINE, key))
    if live.sysctls.get(f"ipv4/conf/{nic.vif}/proxy_arp") not in (None, "1"):
        out.append(Drift("sysctl", nic.vif, f"{who}: proxy_arp is off", ONLINE, key))
    return out


def guest_addresses(nic: Nic) -> list[str]:
    """The addresses routes lead to: the ``ip`` key; for NAT, vif-nat's own choice (the 10.x scheme without one)."""
    if nic.kind != "nat":
        return nic.ips
    from ..core.errors import InputError
    from ..xen.natplan import nat_plan

    try:
        return [nat_plan(nic.ips, nic.domid, nic.devid + 1).guest]
    except InputError:
        return []


def bridge_drifts(bridges: list[tuple[str, str]], live: Live) -> list[Drift]:
    """The config file's ``bridges=bridge:netdev`` pairs: each bridge exists and holds its uplink."""
    out = []
    for bridge, netdev in bridges:
        arg = f"network-bridge netdev={netdev} bridge={bridge}"
        if bridge not in live.links:
            out.append(Drift("bridge-missing", bridge, f"bridge {bridge} (config: {bridge}:{netdev}) does not exist",
                             START_NETWORK, arg=arg))
        elif netdev in live.links and live.links.master_of(netdev) != bridge:
            # network-bridge will not take over a bridge it did not build: the admin puts the port back
            out.append(Drift("uplink-off-bridge", bridge, f"uplink {netdev} is not a port of {bridge}: "
                                                          f"ip link set {netdev} master {bridge}"))
    return out


def started_drifts(started: list[StartedNetwork], live: Live, dhcp_running: bool = False) -> list[Drift]:
    """What network-route/network-nat start set up and is no longer so: sysctls, the MASQUERADE, dnsmasq."""
    out = []
    for net in started:
        arg = f"network-{net.kind} netdev={net.netdev}" + (f" dhcp={net.dhcp}" if net.kind == "nat" else "")
        for key, value in sorted(net.sysctls.items()):
            if live.sysctls.get(key) not in (None, value):
                out.append(Drift("network-sysctl", net.netdev,
                                 f"network-{net.kind} started on {net.netdev}, but net.{key.replace('/', '.')} is "
                                 f"{live.sysctls[key]}, not {value}", START_NETWORK, arg=arg))
        if net.kind == "nat" and not has_masquerade(live.firewall, net.netdev):
            out.append(Drift("masquerade-missing", net.netdev, f"network-nat started on {net.netdev}, but no "
                                                              "MASQUERADE rule names it", START_NETWORK, arg=arg))
        if net.kind == "nat" and net.dhcp == "yes" and not dhcp_running:
            out.append(Drift("dhcp-server-down", net.netdev, f"network-nat started dnsmasq for {net.netdev}'s "
                                                            "guests, and it is not running", START_NETWORK, arg=arg))
    return out


def forwarding_drifts(desired: Desired, live: Live) -> list[Drift]:
    """Routed or NAT guests connected, forwarding off, and no network-route/nat started to own it."""
    if live.sysctls.get("ipv4/ip_forward") != "0" or any(s.kind in ("route", "nat") for s in desired.started):
        return []
    kinds = sorted({n.kind for n in desired.nics if n.connected and n.kind in ("route", "nat")})
    vifs = ", ".join(n.vif for n in desired.nics if n.connected and n.kind in kinds)
    return [Drift("sysctl", "ip_forward", f"IPv4 forwarding is off, but {vifs} need it: run network-{kind} start")
            for kind in kinds]


def leftover_drifts(nics: list[Nic], live: Live) -> list[Drift]:
    """Firewall rules and routes of vifs no backend has any more."""
    known = {n.vif for n in nics}
    out = []
    named = set(_VIF_NAME.findall(live.firewall)) | set(_OUR_CHAIN.findall(live.firewall))
    for dev in sorted(named - known):
        if dev not in live.links:
            out.append(Drift("stale-rules", dev, f"firewall rules name {dev}, which no longer exists",
                             REMOVE_RULES, arg=dev))
    for route in live.routes:
        if route.dev and route.dev not in known and _VIF_NAME.fullmatch(route.dev):
            out.append(Drift("stale-route", route.dev, f"route {route.dst} through {route.dev}, "
                                                       "which no backend has", REMOVE_ROUTE, arg=route.dst))
    return out
