"""What a backend would write for a vif or a network, as text: golden files, docs and debugging."""

from __future__ import annotations

from .model import nft_text
from .plan import (
    compat_rules,
    legacy_vif_tables,
    network_bridge_rules,
    network_nat_rules,
    nft_nat_element,
    nft_vif_elements,
)


def describe_vif(backend: str, kind: str, dev: str, mac: str, ips: tuple[str, ...], antispoof: bool) -> str:
    """Everything *backend* writes on ``online`` of this vif (``offline`` removes exactly this)."""
    if backend == "nft":
        out = "# iptables-nft-restore --noflush -w\n" + compat_rules(kind, dev, ips).restore_text()
        if antispoof:
            out += "# nft (libnftables, one transaction)\n" + nft_text("add", nft_vif_elements(kind, dev, mac, ips))
        return out
    out = ""
    if antispoof:
        out += "# nft (libnftables, one transaction)\n" + nft_text("add", nft_vif_elements(kind, dev, mac, ips))
    for table in legacy_vif_tables(kind, dev, ips):
        out += "# iptables-legacy (python-iptables, one commit)\n" + table.restore_text()
    return out


def describe_network(backend: str, kind: str, netdev: str) -> str:
    """What network-bridge antispoof=yes (kind "bridge") or network-nat (kind "nat") writes on start."""
    if kind == "nat":
        if backend == "nft":
            return "# nft (libnftables)\n" + nft_text("add", [nft_nat_element(netdev)])
        return "# iptables-legacy (python-iptables)\n" + network_nat_rules(netdev).restore_text()
    tool = "iptables-nft-restore --noflush -w" if backend == "nft" else "iptables-legacy (python-iptables)"
    return f"# {tool}\n" + network_bridge_rules(netdev).restore_text()
