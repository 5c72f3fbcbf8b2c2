"""Forget a vif's connections: the kernel deletes the conntrack entries naming its addresses (ctnetlink).

One ``IPCTNL_MSG_CT_DELETE`` per address and tuple field (original and
reply direction, source and destination) carrying ``CTA_FILTER``: the kernel
walks its table and deletes what matches, so no entry is copied to us and a
guest that fills conntrack costs a hotplug the kernel's walk, not a Python
loop over a dump. Each message waits at most until the run's deadline
(``core.request``; at most BUDGET seconds from the start of the flush). A kernel
without filtered deletes refuses the message (it is then an incomplete
tuple, never a flush of everything): a dump is filtered here instead, as
are prefixes (``ip=10.1.5.0/24``), which the kernel's filter cannot match.
Skipped when this namespace tracks nothing (``nf_conntrack_count`` is per namespace).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time

from ..netlink.nlmsg import NETLINK_NETFILTER, NLA_F_NESTED, NLM_F_ACK, attr, error_code, request

COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
BUDGET = 5.0  # seconds, when the caller gives no deadline: well under libxl's 40 s

_MSG_DELETE = (1 << 8) | 2   # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE
_CTA_TUPLE = {"orig": 1, "reply": 2}       # CTA_TUPLE_ORIG, CTA_TUPLE_REPLY
_CTA_FILTER, _CTA_TUPLE_IP = 25, 1
_FILTER_FLAGS = {"orig": 1, "reply": 2}    # CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS
_IP_ATTR = {(4, "src"): 1, (4, "dst"): 2, (6, "src"): 3, (6, "dst"): 4}  # CTA_IP_V4_SRC ...
_FILTER_BIT = {"src": 1 << 0, "dst": 1 << 1}  # CTA_FILTER_F_CTA_IP_SRC, _DST


class Unfiltered(Exception):
    """This kernel does not delete by filter."""


def flush_addresses(ips: tuple[str, ...], deadline: float | None = None) -> int:
    """Delete every conntrack entry whose original or reply tuple names one of *ips*; how many addresses had any."""
    if not ips or not _has_entries():
        return 0
    if deadline is None:  # the run's own deadline (hotplugd's request, or the in-process default)
        from ..core.request import current
        deadline = min(current().deadline, time.monotonic() + BUDGET)
    nets = [ipaddress.ip_network(item, strict=False) for item in ips]
    hosts = [n.network_address for n in nets if n.num_addresses == 1]
    prefixes = [n for n in nets if n.num_addresses > 1]
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            for addr in hosts:
                for direction in ("orig", "reply"):
                    for field in ("src", "dst"):
                        _delete(sock, addr, direction, field, deadline)
    except Unfiltered:
        prefixes = nets
    if prefixes:
        _dump_and_delete(prefixes, deadline)
    return len(nets)


def delete_message(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, direction: str, field: str,
                   seq: int = 1) -> bytes:
    """The ctnetlink request that deletes every entry whose *direction* tuple has *addr* as *field*."""
    ip = attr(_CTA_TUPLE_IP | NLA_F_NESTED, attr(_IP_ATTR[addr.version, field], addr.packed))
    body = struct.pack("=BBH", socket.AF_INET if addr.version == 4 else socket.AF_INET6, 0, 0)
    body += attr(_CTA_TUPLE[direction] | NLA_F_NESTED, ip)
    body += attr(_CTA_FILTER | NLA_F_NESTED, attr(_FILTER_FLAGS[direction], struct.pack("=I", _FILTER_BIT[field])))
    return request(_MSG_DELETE, NLM_F_ACK, seq, body)


def _delete(sock: socket.socket, addr, direction: str, field: str, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("conntrack: out of time before every address was flushed")
    sock.settimeout(left)
    sock.send(delete_message(addr, direction, field))
    reply = sock.recv(65536)
    if len(reply) < 20:
        raise OSError(errno.EPROTO, "conntrack: short netlink answer")
    code = error_code(reply)
    if code in (errno.EINVAL, errno.EOPNOTSUPP):
        raise Unfiltered()
    if code not in (0, errno.ENOENT):
        raise OSError(code, f"conntrack: delete by {direction} {field} {addr}: {os.strerror(code)}")


def _dump_and_delete(nets: list, deadline: float) -> None:
    """The fallback: a dump filtered here (old kernels, prefixes), stopping at *deadline*."""
    from pyroute2 import Conntrack  # only on this path

    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        mine = [net for net in nets if net.version == version]
        if not mine:
            continue
        with Conntrack(nfgen_family=family) as ct:
            for entry in list(ct.dump_entries()):
                if time.monotonic() > deadline:
                    raise TimeoutError("conntrack: out of time in the dump")
                if _names(entry, mine):
                    try:
                        ct.delete(entry)
                    except OSError:
                        continue  # already gone


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
