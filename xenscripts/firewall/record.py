"""What online asked a backend to hold for each vif, remembered until offline: ``<state_dir>/firewall/<vif>.json``.

Offline removes with the backend online used (never re-detected), and a
re-online replaces exactly what the last one allowed, so no allowance
drifts. One small file per vif: nothing per request reads another vif's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..core.files import read_json, remove_file, write_json
from .interface import VifFirewall, VifRules


def path(state_dir: str, dev: str) -> str:
    return os.path.join(state_dir, "firewall", f"{dev}.json")


@contextlib.contextmanager
def locked(state_dir: str | None, dev: str) -> Iterator[None]:
    """Hold *dev*'s record: its online, its offline and hotplugd's restore change its rules one at a time
    (a restore never puts back what an offline is taking away). Bounded by the run's deadline."""
    if not state_dir:
        yield
        return
    from ..core.lock import hotplug_lock
    from ..core.request import current

    with hotplug_lock(dev, os.path.join(state_dir, "firewall-locks"), timeout=max(0.1, current().time_left()),
                      prune=True):
        yield


def load(state_dir: str | None, dev: str) -> tuple[str, VifRules] | None:
    """``(backend, rules)`` remembered for *dev*, or None (none, or unreadable: then nothing is trusted)."""
    if not state_dir:
        return None
    try:
        data = read_json(path(state_dir, dev))
        if not data:
            return None
        vif = VifFirewall(dev=data["dev"], kind=data["kind"], mac=data.get("mac"),
                          ips=tuple(data.get("ips", ())), bridge=data.get("bridge"))
        return data["backend"], VifRules(vif, bool(data["antispoof"]), bool(data.get("dhcp_server")))
    except Exception:  # noqa: BLE001 - a damaged record is a missing one: the backend then looks for itself
        return None


def save(state_dir: str | None, backend: str, rules: VifRules) -> None:
    if not state_dir:
        return
    vif = rules.vif
    write_json(path(state_dir, vif.dev), {"backend": backend, "dev": vif.dev, "kind": vif.kind, "mac": vif.mac,
                                          "ips": list(vif.ips), "bridge": vif.bridge,
                                          "antispoof": rules.antispoof, "dhcp_server": rules.dhcp_server})


def forget(state_dir: str | None, dev: str) -> None:
    if state_dir:
        remove_file(path(state_dir, dev), prune=True)


def remembered(state_dir: str) -> list[tuple[str, VifRules]]:
    """Every record (``xenscripts check``): the vifs whose protection should be in the kernel."""
    try:
        names = sorted(os.listdir(os.path.join(state_dir, "firewall")))
    except OSError:
        return []
    found = (load(state_dir, name.removesuffix(".json")) for name in names if name.endswith(".json"))
    return [r for r in found if r is not None]


def _policy_path(state_dir: str) -> str:
    """Not ``*.json``: no vif name (``forward-policy`` is a valid one) can make its record this file."""
    return os.path.join(state_dir, "firewall", "FORWARD.policy")


def save_forward_policy(state_dir: str | None, policy: str) -> None:
    """The host's ``filter FORWARD`` policy before our first network-bridge start (kept until the last stop)."""
    if state_dir:
        write_json(_policy_path(state_dir), {"FORWARD": policy})


def forward_policy(state_dir: str | None) -> str | None:
    if not state_dir:
        return None
    try:
        data = read_json(_policy_path(state_dir))
    except Exception:  # noqa: BLE001 - unreadable: fall back to upstream's ACCEPT
        return None
    policy = data.get("FORWARD") if isinstance(data, dict) else None
    return policy if policy in ("ACCEPT", "DROP") else None


def forget_forward_policy(state_dir: str | None) -> None:
    if state_dir:
        remove_file(_policy_path(state_dir), prune=True)
