"""Forget a vif's connections: conntrack entries to or from its addresses (pyroute2, imported here).

A ctnetlink dump walks the kernel's whole conntrack hash table (~9 ms here,
with pyroute2 or a bare netlink socket alike), so it is skipped when this
namespace tracks nothing: ``nf_conntrack_count`` is per namespace.
"""

from __future__ import annotations

import ipaddress
import os
import socket

COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"


def flush_addresses(ips: tuple[str, ...]) -> int:
    """Delete every conntrack entry whose original or reply tuple names one of *ips*; return how many."""
    if not ips or not _has_entries():
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


def _has_entries() -> bool:
    """False when this namespace tracks no connection (then there is nothing to flush)."""
    try:
        with open(COUNT, encoding="ascii") as f:
            return int(f.read().strip() or "0") > 0
    except (OSError, ValueError):
        return os.path.exists("/proc/sys/net/netfilter")
