"""What network-route and network-nat started: the state files they leave in the state directory.

``network-route start`` writes ``network-route-<netdev>.json`` and
``network-nat start`` ``network-nat-<netdev>.json``, each with the sysctls
it changed (``{"sysctls": {key: old value}}``, plus ``dhcp`` for NAT); stop
removes the file. A file there means that network should be up.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

_FILE = re.compile(r"network-(route|nat)-(.+)\.json")


@dataclass(frozen=True)
class StartedNetwork:
    kind: str               # "route" or "nat"
    netdev: str
    sysctls: dict[str, str] = field(default_factory=dict)  # key under net/ -> the value start set
    dhcp: str = "no"


def wanted_sysctls(kind: str, netdev: str, remembered: dict[str, str]) -> dict[str, str]:
    """What start turned on: forwarding (and proxy ARP on netdev for route), plus every key it remembered."""
    wanted = {"ipv4/ip_forward": "1"}
    if kind == "route":
        wanted[f"ipv4/conf/{netdev}/proxy_arp"] = "1"
    wanted.update({key: "1" for key in remembered})
    return wanted


def read_started(state_dir: str) -> list[StartedNetwork]:
    """The networks whose state file is in *state_dir*, sorted by kind and netdev."""
    try:
        names = sorted(os.listdir(state_dir))
    except OSError:
        return []
    out = []
    for name in names:
        m = _FILE.fullmatch(name)
        if not m:
            continue
        try:
            with open(os.path.join(state_dir, name), encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
        kind, netdev = m.group(1), m.group(2)
        remembered = state.get("sysctls") if isinstance(state.get("sysctls"), dict) else {}
        out.append(StartedNetwork(kind=kind, netdev=netdev, sysctls=wanted_sysctls(kind, netdev, remembered),
                                  dhcp=str(state.get("dhcp", "no"))))
    return out
