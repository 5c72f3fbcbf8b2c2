"""Optional components (python3-nftables, nftables, dnsmasq, graphviz): there, needed, without.

``xenscripts status`` lists each; ``xenscripts check`` names a missing one
the host's configuration needs (drift ``component-missing``, subject the
Debian package). Each entry says what works without it. arptables is not
one: antispoof's ARP rules are nft tables on every backend.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from .drift import MANUAL, Drift
from .started import StartedNetwork

SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
DNSMASQ = "/usr/sbin/dnsmasq"


@dataclass(frozen=True)
class Component:
    package: str     # the Debian package that provides it
    what: str
    present: bool
    needed: str      # why this host needs it; "" when it does not
    without: str     # the documented behaviour when it is missing

    def as_dict(self) -> dict:
        return {"package": self.package, "what": self.what, "present": self.present,
                "needed": self.needed or None, "without": self.without}


def nft_binding_present(env: Mapping[str, str]) -> bool:
    """python3-nftables importable by our code (the venv's, or Debian's by path; ``XENSCRIPTS_NFTABLES_BINDING``)."""
    from ..firewall.libnft import SYSTEM_BINDING

    path = env.get("XENSCRIPTS_NFTABLES_BINDING")
    if path is not None:
        return os.path.isfile(path)
    try:
        import importlib.util
        if importlib.util.find_spec("nftables") is not None:
            return True
    except (ImportError, ValueError):
        pass
    return os.path.isfile(SYSTEM_BINDING)


def components(env: Mapping[str, str], conf: Mapping[str, str], auto_backend: str,
               started: list[StartedNetwork]) -> list[Component]:
    """Each optional component: present or not, and whether this host's configuration needs it."""
    backend = conf.get("firewall") or "auto"
    backend = auto_backend if backend == "auto" else backend
    antispoof = conf.get("antispoof") == "yes"
    dhcp_yes = conf.get("dhcp") == "yes" or any(s.kind == "nat" and s.dhcp == "yes" for s in started)
    binding = nft_binding_present(env)
    nft_use = ("the firewall backend is nft" if backend == "nft" else
               "antispoof=yes (its tables are nft on every backend)" if antispoof and backend == "legacy" else "")
    return [
        Component("python3-nftables", "the nftables Python binding", binding, nft_use,
                  "rules go through the nft command, a fork per transaction (slower, same rules)"),
        Component("nftables", "the nft command", shutil.which("nft", path=SBIN_PATH) is not None,
                  "" if binding else nft_use,
                  "with python3-nftables nothing is lost; without both, compat rules are skipped "
                  "(logged) and antispoof=yes fails the vif"),
        Component("dnsmasq-base", "dnsmasq", os.access(DNSMASQ, os.X_OK),
                  "dhcp=yes" if dhcp_yes else "",
                  "network-nat dhcp=yes fails naming the package; vif-nat still writes the guest's host entry"),
        Component("graphviz", "the dot renderer", shutil.which("dot") is not None, "",
                  "xenscripts show prints DOT text and a plain-text tree instead of SVG/PNG"),
    ]


def component_drifts(found: list[Component]) -> list[Drift]:
    """A drift for each missing component the configuration needs."""
    return [Drift("component-missing", c.package,
                  f"{c.what} is not installed and {c.needed}: {c.without}; 'apt-get install {c.package}'",
                  MANUAL) for c in found if c.needed and not c.present]


def format_components(found: list[dict]) -> str:
    """The status lines, one per component (from ``Component.as_dict()``, as the report holds them)."""
    lines = ["optional components:"]
    for c in found:
        state = "installed" if c["present"] else (f"MISSING ({c['needed']})" if c["needed"] else "not installed")
        lines.append(f"  {c['package']:<17} {state}" + ("" if c["present"] else f": {c['without']}"))
    return "\n".join(lines) + "\n"
