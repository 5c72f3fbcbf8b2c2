"""hotplugd's watch on our nft tables: one vanishes (``nft flush ruleset``, ``systemctl restart nftables``,
``nft delete table``) or loses rules (``nft flush table``), and the protection of every vif with a record is
put back within a second, logged.

One thread, owned by the daemon (``start``). A namespace is watched once a vif there got antispoof:
the request's own thread (already in that namespace) opens a netlink socket subscribed to nf_tables'
events and a descriptor of the namespace, and hands both over (``noticed``). On a table deletion of
ours (or of ``ip filter``, where the compat chains live), or a chain, rule or set deleted in one of our
own tables, the monitor starts a short thread that joins
the namespace and runs ``restore_protection`` from the records. A namespace whose records are all
gone is dropped. Nothing here runs in a one-shot process: without ``start``, ``noticed`` does nothing.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import describe
from ..netlink.nlmsg import NETLINK_NETFILTER, attrs, messages

NFNLGRP_NFTABLES = 7
_DELTABLE = (10 << 8) | 2  # NFNL_SUBSYS_NFTABLES, NFT_MSG_DELTABLE
# NFT_MSG_DELCHAIN, _DELRULE, _DELSET: watched in our own tables only (ip filter loses a vif's compat jumps
# and chain on every offline)
_DELPARTS = {(10 << 8) | 5, (10 << 8) | 8, (10 << 8) | 11}
_NFTA_TABLE_NAME = 1  # also NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE
# (nfproto, table) of ours: bridge, inet, arp xenscripts; ip filter (the compat chains, through iptables-nft)
WATCHED = {(7, "xenscripts"), (1, "xenscripts"), (3, "xenscripts"), (2, "filter")}
SETTLE = 0.05  # seconds to let the rest of one transaction's events arrive before restoring
_FAMILY = {7: "bridge", 1: "inet", 3: "arp", 2: "ip"}
CLONE_NEWNET = 0x40000000
SWEEP = 5.0  # seconds between looks for namespaces whose records are all gone

Say = Callable[[str], None]


@dataclass
class _Watched:
    sock: socket.socket
    nsfd: int
    state_dir: str


class Monitor:
    """The thread and what it watches: per network namespace, a netlink socket and the records' directory."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self._lock = threading.Lock()
        self._watched: dict[tuple[int, int], _Watched] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="hotplugd-nft-monitor", daemon=True)
        self._thread.start()

    def noticed(self, state_dir: str) -> None:
        """Watch the calling thread's namespace (its records in *state_dir*), if not watched already."""
        st = os.stat("/proc/thread-self/ns/net")
        key = (st.st_dev, st.st_ino)
        with self._lock:
            if key in self._watched:
                return
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_NETFILTER)
        try:
            sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        except OSError:
            sock.close()
            raise
        nsfd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        with self._lock:
            if key in self._watched:
                sock.close()
                os.close(nsfd)
                return
            self._watched[key] = _Watched(sock, nsfd, state_dir)
        os.write(self._wake_w, b"+")

    def _run(self) -> None:
        swept = time.monotonic()
        while True:
            with self._lock:
                by_fd = {w.sock.fileno(): w for w in self._watched.values()}
            ready, _, _ = select.select([self._wake_r, *by_fd], [], [], SWEEP)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for fd in ready:
                if fd in by_fd:
                    watched = by_fd[fd]
                    gone = _losses(watched.sock)
                    if gone:
                        threading.Thread(target=self._restore, args=(watched, gone), daemon=True,
                                         name="hotplugd-nft-restore").start()
            if time.monotonic() - swept >= SWEEP:
                self._sweep()
                swept = time.monotonic()

    def _restore(self, watched: _Watched, gone: list[str]) -> None:
        """In the watched namespace: put back what the records say and the kernel lost; say why."""
        from . import restore_protection

        try:
            if _libc.setns(watched.nsfd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            restored = restore_protection(watched.state_dir, _SayLog(self.say))
        except Exception as e:  # noqa: BLE001 - the daemon carries on; the next online restores too
            self.say(f"hotplugd: nft monitor: {', '.join(gone)} deleted; restoring failed: {describe(e)}")
            return
        if restored:
            why = ("nft flush ruleset, or a delete table" if any(g.startswith("table ") for g in gone)
                   else "nft flush table, or a rule deleted by hand")
            self.say(f"hotplugd: nft monitor: {', '.join(gone)} deleted ({why}): protection of "
                     f"{' '.join(restored)} restored")

    def _sweep(self) -> None:
        """Drop namespaces without a record left (their vifs went offline, or the namespace is gone)."""
        with self._lock:
            idle = [key for key, w in self._watched.items() if not _has_records(w.state_dir)]
            dropped = [self._watched.pop(key) for key in idle]
        for w in dropped:
            w.sock.close()
            os.close(w.nsfd)


def _losses(sock: socket.socket) -> list[str]:
    """What of ours was deleted, from the events waiting on *sock* (read to the end, then again after
    SETTLE for the rest of the transaction): ``table bridge xenscripts`` when a table went, ``rules of table
    inet xenscripts`` when only its chains, rules or sets did; every table when events were lost (ENOBUFS)."""
    tables: set[tuple[int, str]] = set()
    parts: set[tuple[int, str]] = set()
    for wait in (0.0, SETTLE):
        if wait and not (tables or parts):
            break
        if wait:
            select.select([sock], [], [], wait)
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                return [f"table {_FAMILY[f]} {t}" for f, t in sorted(WATCHED)]
            for kind, family, table in _events(data):
                if (family, table) not in WATCHED:
                    continue
                if kind == _DELTABLE:
                    tables.add((family, table))
                elif kind in _DELPARTS and table == "xenscripts":
                    parts.add((family, table))
    return ([f"table {_FAMILY[f]} {t}" for f, t in sorted(tables)]
            + [f"rules of table {_FAMILY[f]} {t}" for f, t in sorted(parts - tables)])


def _events(data: bytes) -> list[tuple[int, int, str]]:
    """``(message type, nfproto, table name)`` of each nf_tables message in *data*."""
    return [(kind, message[16], _table_name(message)) for kind, message in messages(data)
            if (kind == _DELTABLE or kind in _DELPARTS) and len(message) >= 20]


def _table_name(message: bytes) -> str:
    """The table an nf_tables message names (its attributes after nlmsghdr and nfgenmsg)."""
    for kind, payload in attrs(message, 20):
        if kind == _NFTA_TABLE_NAME:
            return bytes(payload).rstrip(b"\0").decode(errors="replace")
    return ""


def _has_records(state_dir: str) -> bool:
    try:
        return any(name.endswith(".json") for name in os.listdir(os.path.join(state_dir, "firewall")))
    except OSError:
        return False


class _SayLog:
    """The Log a restore writes to: the daemon's own log lines."""

    def __init__(self, say: Say) -> None:
        self.say = say

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        self.say(f"hotplugd: nft monitor: {message}")

    warning = error = info


_libc = ctypes.CDLL(None, use_errno=True)
_monitor: list[Monitor] = []


def start(say: Say) -> Monitor:
    """The daemon's monitor (one per process)."""
    if not _monitor:
        _monitor.append(Monitor(say))
    return _monitor[0]


def noticed(state_dir: str | None) -> None:
    """A vif here got antispoof: have the daemon's monitor watch this namespace (nothing outside hotplugd)."""
    if _monitor and state_dir:
        try:
            _monitor[0].noticed(state_dir)
        except OSError as e:
            _monitor[0].say(f"hotplugd: nft monitor cannot watch this namespace: {e}")
