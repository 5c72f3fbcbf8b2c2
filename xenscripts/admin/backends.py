"""The guest NICs xenstore knows: dom0's backend tree, ``/local/domain/0/backend/vif/<domid>/<devid>``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..xen import xenstore

BACKEND_ROOT = "/local/domain/0/backend/vif"
KINDS = {"vif-bridge": "bridge", "vif-route": "route", "vif-nat": "nat", "vif-openvswitch": "openvswitch"}
STATE_CONNECTED = "4"


@dataclass
class Nic:
    """One guest NIC as libxl wrote it, with the result our script left."""

    domid: int
    devid: int
    name: str            # the domain's name ("" when unknown)
    backend: str
    script: str          # as libxl passes it (a path or a bare name)
    vif: str             # dom0's device: ``vifname`` or vif<domid>.<devid>
    mac: str = ""
    ip: str = ""         # space-separated, as in the guest config
    bridge: str = ""
    mtu: str = ""
    hotplug_status: str = ""
    hotplug_error: str = ""
    online: str = ""
    state: str = ""
    gatewaydev: str = ""  # libxl passes it as ``netdev`` (vif-route, vif-nat)
    firewall: str = ""   # per-NIC overrides of the host settings, when xenstore has them
    antispoof: str = ""
    vlan: str = ""       # libxl's vlan key (vif-openvswitch, vif-bridge)

    @property
    def kind(self) -> str:
        """"bridge", "route", "nat", or the script's name for anything else."""
        base = os.path.basename(self.script) or "vif-bridge"
        return KINDS.get(base, base)

    @property
    def ips(self) -> list[str]:
        return self.ip.replace(",", " ").split()

    @property
    def connected(self) -> bool:
        """Our script ran online and said so."""
        return self.hotplug_status == "connected"


def read_nics(xs: xenstore.XenStore) -> list[Nic]:
    """Every backend vif in xenstore, ordered by domid then devid."""
    nics = []
    for domid in _numbers(xs, BACKEND_ROOT):
        name = xs.read(f"/local/domain/{domid}/name") or ""
        for devid in _numbers(xs, f"{BACKEND_ROOT}/{domid}"):
            be = f"{BACKEND_ROOT}/{domid}/{devid}"
            keys = set(xs.directory(be))

            def key(k: str, keys: set[str] = keys, be: str = be) -> str:
                return (xs.read(f"{be}/{k}") or "") if k in keys else ""

            nics.append(Nic(domid=domid, devid=devid, name=name, backend=be, script=key("script"),
                            vif=key("vifname") or f"vif{domid}.{devid}", mac=key("mac"), ip=key("ip"),
                            bridge=key("bridge"), mtu=key("mtu"), hotplug_status=key("hotplug-status"),
                            hotplug_error=key("hotplug-error"), online=key("online"), state=key("state"),
                            gatewaydev=key("gatewaydev"), firewall=key("firewall"),
                            antispoof=key("antispoof"), vlan=key("vlan")))
    return nics


def _numbers(xs: xenstore.XenStore, path: str) -> list[int]:
    try:
        entries = xs.directory(path)
    except OSError:
        return []
    return sorted(int(e) for e in entries if e.isdigit())


def load_nics(env: Mapping[str, str]) -> tuple[list[Nic], str | None]:
    """The NICs and None, or no NICs and why xenstore could not be read."""
    try:
        with xenstore.connect(env) as xs:
            return read_nics(xs), None
    except OSError as e:
        return [], f"cannot read xenstore: {e.filename or e.strerror or e}"  # the paths tried, not a repr
