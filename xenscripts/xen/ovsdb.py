"""The Open vSwitch database, through Open vSwitch's own Python IDL (PyPI ``ovs``).

One warm connection per database socket, owned by the process and shared by
its threads (each use holds the connection's lock), so hotplugd pays the
connect and the initial replica once. The replica holds only the columns
named in ``_COLUMNS``; ports and bridges are found through IDL indexes, not
by scanning. Like ``ovs-vsctl``, a change waits until ovs-vswitchd has
applied it (``next_cfg``/``cur_cfg``).

The database is where ovs-vsctl finds it: ``$OVS_RUNDIR/db.sock``, else the
``ovsdb`` key of /etc/xen/xenscripts.conf, else /var/run/openvswitch/db.sock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..core.errors import HotplugError

DEFAULT_RUNDIR = "/var/run/openvswitch"
DB = "Open_vSwitch"
_COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg"],
    "Bridge": ["name", "ports"],
    "Port": ["name", "interfaces", "tag", "trunks", "vlan_mode", "external_ids"],
    "Interface": ["name", "external_ids", "ofport", "mtu"],
}
_INDEXED = ("Bridge", "Port", "Interface")
_RETRIES = 5


class OvsdbError(HotplugError):
    """The database is not there, not answering, or refused a change."""


@dataclass(frozen=True)
class OvsPort:
    """One port as the database has it (the interface of the same name beside it)."""

    name: str
    bridge: str | None
    tag: int | None = None
    trunks: tuple[int, ...] = ()
    vlan_mode: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)  # the Interface's
    ofport: int | None = None


@dataclass(frozen=True)
class PortSpec:
    """A port as we want it."""

    bridge: str
    name: str
    tag: int | None = None
    trunks: tuple[int, ...] = ()
    vlan_mode: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)

    def matches(self, port: OvsPort | None) -> bool:
        """True when *port* already is this (no write needed, no flap)."""
        return (port is not None and port.bridge == self.bridge and port.tag == self.tag
                and port.trunks == self.trunks and port.vlan_mode == self.vlan_mode
                and all(port.external_ids.get(k) == v for k, v in self.external_ids.items()))


def db_socket(env: Mapping[str, str], conf: Mapping[str, str]) -> str:
    """Where ovs-vsctl would look: ``$OVS_RUNDIR/db.sock``, else conf ``ovsdb``, else the default."""
    if env.get("OVS_RUNDIR"):
        return os.path.join(env["OVS_RUNDIR"], "db.sock")
    return conf.get("ovsdb") or os.path.join(DEFAULT_RUNDIR, "db.sock")


_connections: dict[str, Ovsdb] = {}
_connections_lock = threading.Lock()


def connect(path: str, timeout: float) -> Ovsdb:
    """The process's warm connection to the database at *path*, made (and synced) on first use."""
    with _connections_lock:
        db = _connections.get(path)
        if db is not None and db.alive():
            return db
        if db is not None:
            db.close()
        db = Ovsdb(path, timeout)
        _connections[path] = db
        return db


def forget(path: str) -> None:
    """Drop the cached connection to *path* (after it broke)."""
    with _connections_lock:
        db = _connections.pop(path, None)
    if db is not None:
        db.close()


def close_all() -> None:
    with _connections_lock:
        dbs = list(_connections.values())
        _connections.clear()
    for db in dbs:
        db.close()


def _probe(path: str) -> None:
    """Fail clearly, before any IDL work, when nothing listens on *path*."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError as e:
            raise OvsdbError(f"Open vSwitch database not reachable at {path}: {e.strerror or e} "
                             "(is ovsdb-server running? OVS_RUNDIR, or ovsdb= in "
                             "/etc/xen/xenscripts.conf, names its socket)") from None


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Ovsdb:
    """One IDL session to one ovsdb-server; every method takes the lock (see module doc)."""

    def __init__(self, path: str, timeout: float) -> None:
        import ovs.db.idl
        import ovs.jsonrpc
        import ovs.stream

        self.path = path
        self.lock = threading.Lock()
        self._idl_mod = ovs.db.idl
        self._entry_classes: dict[str, Any] = {}
        _probe(path)
        self._inode = _inode(path)
        deadline = time.monotonic() + timeout
        remote = f"unix:{path}"
        error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote), int(timeout * 1000))
        if error:
            raise OvsdbError(f"Open vSwitch database at {path}: cannot connect: {os.strerror(error)}")
        rpc = ovs.jsonrpc.Connection(stream)
        try:
            error, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", [DB]))
        finally:
            rpc.close()
        if error or reply is None or reply.error:
            raise OvsdbError(f"Open vSwitch database at {path}: no {DB} schema "
                             f"({os.strerror(error) if error else reply.error if reply else 'no reply'})")
        helper = ovs.db.idl.SchemaHelper(schema_json=reply.result)
        for table, columns in _COLUMNS.items():
            helper.register_columns(table, columns)
        self.idl = ovs.db.idl.Idl(remote, helper, probe_interval=0, leader_only=False)
        for table in _INDEXED:
            self.idl.index_create(table, "name").add_column("name")
        with self.lock:
            self._wait(lambda: self.idl.has_ever_connected(), deadline, "its contents")

    # ------------------------------------------------------------- plumbing
    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken session must not fail anything
            self.idl.close()

    def alive(self) -> bool:
        """Still talking to the server that made the socket we connected to (a restart makes a new one)."""
        if _inode(self.path) != self._inode:
            return False
        with self.lock:
            self.idl.run()
            return bool(self.idl._session.is_connected())

    def _wait(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Run the IDL until *done()* or *deadline*."""
        import ovs.poller

        while True:
            self.idl.run()
            if done():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise OvsdbError(f"Open vSwitch database at {self.path}: timed out waiting for {what}")
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(max(1, int(min(left, 0.5) * 1000)))
            poller.block()

    def _row(self, table: str, name: str) -> Any:
        return next(iter(self.idl.index_equal(table, "name", self._key(table, name))), None)

    def _key(self, table: str, name: str) -> Any:
        from ovs.db.custom_index import IndexEntryClass

        cls = self._entry_classes.get(table)
        if cls is None:
            cls = self._entry_classes[table] = IndexEntryClass(self.idl.tables[table])
        return cls(name=name)

    def _port_of(self, row: Any) -> OvsPort:
        bridge = self._bridge_of(row)
        iface = next((i for i in row.interfaces if i.name == row.name), None)
        return OvsPort(name=row.name, bridge=bridge, tag=_one(row.tag), trunks=tuple(sorted(row.trunks)),
                       vlan_mode=_one(row.vlan_mode),
                       external_ids=dict(iface.external_ids) if iface is not None else {},
                       ofport=_one(iface.ofport) if iface is not None else None)

    def _bridge_of(self, port_row: Any) -> str | None:
        for br in self.idl.tables["Bridge"].rows.values():  # bridges are few; ports are many
            if port_row in br.ports:
                return str(br.name)
        return None

    def _transact(self, build: Callable[[Any], bool], deadline: float) -> int | None:
        """Build and commit one transaction (retried on TRY_AGAIN), under the lock.

        Returns the ``next_cfg`` it asked ovs-vswitchd to reach (for ``_wait_applied``, after
        the lock is released), or None when *build* changed nothing.
        """
        txn_cls = self._idl_mod.Transaction
        for _attempt in range(_RETRIES):
            self.idl.run()
            txn = txn_cls(self.idl)
            if not build(txn):
                txn.abort()
                return None
            ovs_row = next(iter(self.idl.tables["Open_vSwitch"].rows.values()), None)
            if ovs_row is not None:
                ovs_row.increment("next_cfg")
            status = txn.commit()
            while status == txn_cls.INCOMPLETE:
                self._wait(partial(_committed, txn, txn_cls.INCOMPLETE), deadline, "a transaction to commit")
                status = txn.commit()
            if status == txn_cls.TRY_AGAIN:
                continue
            if status not in (txn_cls.SUCCESS, txn_cls.UNCHANGED):
                raise OvsdbError(f"Open vSwitch database at {self.path} refused the change: "
                                 f"{txn.get_error() or txn_cls.status_to_string(status)}")
            return txn.get_increment_new_value() if ovs_row is not None and status == txn_cls.SUCCESS else None
        raise OvsdbError(f"Open vSwitch database at {self.path}: the change kept conflicting, given up")

    def _wait_applied(self, wanted: int | None, deadline: float) -> None:
        """Wait, without holding the lock, until ovs-vswitchd has applied ``next_cfg`` *wanted* (as ovs-vsctl).

        Threads waiting at once each take the lock only to run the IDL, so one
        reconfiguration of ovs-vswitchd serves all their changes.
        """
        import ovs.poller

        if wanted is None:
            return
        while True:
            with self.lock:
                self.idl.run()
                row = next(iter(self.idl.tables["Open_vSwitch"].rows.values()), None)
                if row is None or _applied(row, wanted):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OvsdbError(f"Open vSwitch database at {self.path}: timed out waiting for "
                                     "ovs-vswitchd to apply the change (is ovs-vswitchd running?)")
                poller = ovs.poller.Poller()
                self.idl.wait(poller)
                poller.timer_wait(max(1, int(min(left, 0.02) * 1000)))
            poller.block()

    # ------------------------------------------------------------- queries
    def port(self, name: str) -> OvsPort | None:
        with self.lock:
            self.idl.run()
            row = self._row("Port", name)
            return self._port_of(row) if row is not None else None

    def has_bridge(self, name: str) -> bool:
        with self.lock:
            self.idl.run()
            return self._row("Bridge", name) is not None

    def interface_mtu(self, name: str) -> int | None:
        with self.lock:
            self.idl.run()
            row = self._row("Interface", name)
            return _one(row.mtu) if row is not None else None

    def ports(self) -> list[OvsPort]:
        """Every port of every bridge (for status and show, never per request)."""
        with self.lock:
            self.idl.run()
            return [self._port_of(row) for row in self.idl.tables["Port"].rows.values()]

    # ------------------------------------------------------------- changes
    def ensure_port(self, spec: PortSpec, timeout: float) -> OvsPort | None:
        """Make port *spec.name* exactly *spec* in one transaction; return what was there before.

        Already so: nothing is written. On another bridge: taken off it and
        added anew (upstream's ``--if-exists del-port`` + ``add-port``). On
        this bridge: only the columns that differ are set, so the port keeps
        its row and its OpenFlow number (no flap).
        """
        deadline = time.monotonic() + timeout
        with self.lock:
            self.idl.run()
            row = self._row("Port", spec.name)
            before = self._port_of(row) if row is not None else None
            if spec.matches(before):
                return before

            def build(txn: Any) -> bool:
                bridge = self._row("Bridge", spec.bridge)
                if bridge is None:
                    raise OvsdbError(f"Open vSwitch has no bridge {spec.bridge}")
                port = self._row("Port", spec.name)
                if port is not None and port not in bridge.ports:
                    self._delete_port_row(port)
                    port = None
                if port is None:
                    port = txn.insert(self.idl.tables["Port"])
                    port.name = spec.name
                    _set_vlan(port, spec.tag, spec.trunks, spec.vlan_mode, new=True)
                    iface = txn.insert(self.idl.tables["Interface"])
                    iface.name = spec.name
                    iface.external_ids = dict(spec.external_ids)
                    port.interfaces = [iface]
                    bridge.addvalue("ports", port)
                    return True
                _set_vlan(port, spec.tag, spec.trunks, spec.vlan_mode)
                iface = next((i for i in port.interfaces if i.name == spec.name), None)
                if iface is not None:
                    for key, value in spec.external_ids.items():
                        if iface.external_ids.get(key) != value:
                            iface.setkey("external_ids", key, value)
                return True

            wanted = self._transact(build, deadline)
        self._wait_applied(wanted, deadline)
        return before

    def delete_port(self, name: str, timeout: float) -> OvsPort | None:
        """``--if-exists del-port``: take port *name* off its bridge; return what it was (None: absent)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            self.idl.run()
            row = self._row("Port", name)
            if row is None:
                return None
            before = self._port_of(row)

            def build(txn: Any) -> bool:
                port = self._row("Port", name)
                if port is None:
                    return False
                self._delete_port_row(port)
                return True

            wanted = self._transact(build, deadline)
        self._wait_applied(wanted, deadline)
        return before

    def _delete_port_row(self, port: Any) -> None:
        for br in self.idl.tables["Bridge"].rows.values():
            if port in br.ports:
                br.delvalue("ports", port)
        for iface in port.interfaces:
            iface.delete()
        port.delete()

    def wait_ofport(self, name: str, timeout: float) -> int:
        """The OpenFlow port number ovs-vswitchd gave interface *name* (waits for it)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            def number() -> int | None:
                row = self._row("Interface", name)
                value = _one(row.ofport) if row is not None else None
                return value if value is not None and value > 0 else None

            self._wait(lambda: number() is not None, deadline, f"an OpenFlow port number for {name}")
            value = number()
            assert value is not None
            return value


def _set_vlan(port: Any, tag: int | None, trunks: tuple[int, ...], vlan_mode: str | None,
              new: bool = False) -> None:
    """Write the VLAN columns that differ (a write of an equal value would still be a write)."""
    if new or _one(port.tag) != tag:
        port.tag = [] if tag is None else [tag]
    if new or tuple(sorted(port.trunks)) != trunks:
        port.trunks = list(trunks)
    if new or _one(port.vlan_mode) != vlan_mode:
        port.vlan_mode = [] if vlan_mode is None else [vlan_mode]


def _one(value: Any) -> Any:
    """An optional OVSDB column (a list of zero or one items) as its item or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _committed(txn: Any, incomplete: Any) -> bool:
    return bool(txn.commit() != incomplete)


def _applied(ovs_row: Any, wanted: int) -> bool:
    """ovs-vswitchd has applied configuration *wanted* (``cur_cfg`` caught up with ``next_cfg``)."""
    return _one(ovs_row.cur_cfg) is not None and bool(ovs_row.cur_cfg >= wanted)
