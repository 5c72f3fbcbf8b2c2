"""What the kernel has, in this network namespace: links, addresses, routes, sysctls, firewall.

Read once per admin run (netlink through pyroute2, ``/proc/sys/net``, and
the firewall tools' own listings); the result is plain data, so status,
check and show are pure functions of it.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

from ..netlink.link import Links, Net
from ..netlink.sysctl import read_sysctl


@dataclass
class Route:
    dst: str          # "10.1.0.11/32", "default"
    dev: str | None
    gateway: str | None = None
    src: str | None = None


@dataclass
class Live:
    links: Links = field(default_factory=Links)
    addrs: dict[str, list[str]] = field(default_factory=dict)  # by link: "10.0.0.1/24", IPv4 then IPv6, no link-local
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # "ipv4/ip_forward" -> "1"
    firewall: str = ""  # the rules as text (nft list ruleset + iptables-save), searched for vif names
    firewall_backend: tuple[str, str] = ("", "")  # what firewall=auto picks here, and why
    ovs_ports: dict[str, Any] = field(default_factory=dict)  # Open vSwitch ports by name (admin/ovs.py)
    bridge_vlans: dict[str, dict[int, int]] = field(default_factory=dict)  # vif -> VID -> flags (admin/vlans.py)

    def ports(self, bridge: str) -> list[str]:
        return self.links.ports_of(bridge)

    def bridges(self) -> list[str]:
        return self.links.bridges()

    def routes_via(self, dev: str) -> list[Route]:
        return [r for r in self.routes if r.dev == dev]


def read_firewall_text() -> str:
    """Every rule the host has, as the firewall tools print them (empty when none can be read)."""
    out = []
    for argv in (["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"], ["iptables-legacy-save"],
                 ["ip6tables-legacy-save"], ["ebtables-save"]):
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False,
                                stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if cp.returncode == 0:
            out.append(cp.stdout)
    return "\n".join(out)


def read_live(with_firewall: bool = True) -> Live:
    """The kernel's state in the caller's network namespace."""
    live = Live()
    with Net() as net:
        live.links = net.links()
        for msg in net.ipr.get_addr():
            owner = live.links.name_of(msg["index"])
            if owner is None or (msg["family"] == socket.AF_INET6 and msg["scope"] == 253):
                continue
            live.addrs.setdefault(owner, []).append(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        for msg in net.ipr.get_routes(family=socket.AF_INET, table=254):
            dst = msg.get("RTA_DST")
            live.routes.append(Route(dst=f"{dst}/{msg['dst_len']}" if dst else "default",
                                     dev=live.links.name_of(msg.get("RTA_OIF")), gateway=msg.get("RTA_GATEWAY"),
                                     src=msg.get("RTA_PREFSRC")))
    live.sysctls["ipv4/ip_forward"] = read_sysctl("ipv4/ip_forward") or ""
    for name in live.links:
        value = read_sysctl(f"ipv4/conf/{name}/proxy_arp")
        if value is not None:
            live.sysctls[f"ipv4/conf/{name}/proxy_arp"] = value
    if with_firewall:
        from ..firewall.detect import auto_backend

        live.firewall = read_firewall_text()
        live.firewall_backend = auto_backend()
    return live
