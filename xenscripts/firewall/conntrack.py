"""Forget a vif's connections: conntrack entries to or from its addresses (pyroute2, imported here)."""

from __future__ import annotations

import ipaddress
import socket


def flush_addresses(ips: tuple[str, ...]) -> int:
    """Delete every conntrack entry whose original or reply tuple names one of *ips*; return how many."""
    if not ips:
        return 0
    from pyroute2 import Conntrack  # only when a vif with addresses goes on- or offline

    nets = [ipaddress.ip_network(item, strict=False) for item in ips]
    deleted = 0
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        mine = [net for net in nets if net.version == version]
        if not mine:
            continue
        with Conntrack(nfgen_family=family) as ct:
            for entry in list(ct.dump_entries()):
                if _names(entry, mine):
                    try:
                        ct.delete(entry)
                        deleted += 1
                    except OSError:
                        continue  # already gone
    return deleted


def _names(entry, nets) -> bool:
    for tup in (entry.tuple_orig, entry.tuple_reply):
        for addr in (getattr(tup, "saddr", None), getattr(tup, "daddr", None)):
            if addr and any(ipaddress.ip_address(addr) in net for net in nets):
                return True
    return False
