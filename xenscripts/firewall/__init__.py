"""Firewall rules for vifs: the one call site every vif script goes through.

Rules themselves come with the firewall work (see docs/differences.md):
Debian's upstream scripts ship with ``handle_iptable`` disabled, so making no
change here is exactly what an admin's host does today.
"""

from __future__ import annotations

from collections.abc import Callable


def update_vif_rules(dev: str, ip: list[str], plugging: bool, debug: Callable[[str], None]) -> None:
    """Install (plugging) or remove the firewall rules of *dev*; currently none."""
    debug(f"firewall: no rules configured for {dev} ({'online' if plugging else 'offline'})")
