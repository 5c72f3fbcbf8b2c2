"""The parts of the xenstore protocol only tests use (mkdir, rm, permissions, watches), beside the product's client.

``connect_for_tests(env)`` returns a ``TestXenStore``: the product's ``XenStore``
with these requests added, so the protocol tests check the same connection code.
"""

from __future__ import annotations

import errno as _errno
import time
from collections.abc import Iterable, Mapping

from xenscripts.xen import xenstore
from xenscripts.xen.xenstore import (
    XS_GET_DOMAIN_PATH,
    XS_GET_PERMS,
    XS_MKDIR,
    XS_READ,
    XS_RM,
    XS_SET_PERMS,
    XS_UNWATCH,
    XS_WATCH,
    XS_WATCH_EVENT,
    Transaction,
    XenStore,
    XenStoreError,
    _Connection,
    _dec,
    _strings,
)


class WatchingConnection(_Connection):
    """The product's transport, keeping the watch events that arrive between replies (the product never watches)."""

    events: list[tuple[str, str]]

    def _read_message(self, deadline: float | None, path: str) -> tuple[int, int, bytes] | None:
        msg = super()._read_message(deadline, path)  # the product's request() skips watch events: keep them
        if msg is not None and msg[0] == XS_WATCH_EVENT:
            parts = _strings(msg[2])
            if len(parts) >= 2:
                self.events.append((parts[0], parts[1]))
        return msg


class TestXenStore(XenStore):
    """The product's client plus the requests only tests make."""

    __test__ = False  # not a pytest class

    def read_required(self, path: str) -> str:
        """The node's value; XenStoreError(ENOENT) if it does not exist."""
        return _dec(self._req(XS_READ, path))

    def mkdir(self, path: str) -> None:
        """Create a node with an empty value (nothing happens if it exists)."""
        self._req(XS_MKDIR, path)

    def rm(self, path: str) -> None:
        """Remove a node and everything below it; a missing node is fine."""
        try:
            self._req(XS_RM, path)
        except XenStoreError as e:
            if e.errno != _errno.ENOENT:
                raise

    def get_perms(self, path: str) -> list[str]:
        """The node's permissions, e.g. ``["n0", "r5"]`` (owner first)."""
        return _strings(self._req(XS_GET_PERMS, path))

    def set_perms(self, path: str, perms: Iterable[str]) -> None:
        """Set the node's permissions: strings like ``"n0"``, ``"r5"``, ``"b7"``."""
        self._req(XS_SET_PERMS, path, *perms)

    def get_domain_path(self, domid: int) -> str:
        """The home path of a domain, ``/local/domain/<domid>``."""
        return _strings(self._req(XS_GET_DOMAIN_PATH, str(domid)))[0]

    def watch(self, path: str, token: str) -> None:
        """Watch a subtree; xenstored sends one event for it straight away."""
        self._req(XS_WATCH, path, token)

    def unwatch(self, path: str, token: str) -> None:
        self._req(XS_UNWATCH, path, token)

    def read_watch(self, timeout: float | None = None) -> tuple[str, str] | None:
        """Next watch event as (path, token); None if none came within timeout
        (default: the connection's timeout)."""
        conn = self._conn
        assert isinstance(conn, WatchingConnection)
        if not conn.events:
            if conn.fd < 0:
                raise XenStoreError("EBADF")
            wait = conn.timeout if timeout is None else timeout
            deadline = time.monotonic() + wait
            while not conn.events:
                if conn._read_message(deadline, "") is None:
                    return None
        return conn.events.pop(0)

    def transaction(self) -> TestTransaction:
        plain = super().transaction()
        return TestTransaction(plain._conn, plain._tx)


class TestTransaction(Transaction, TestXenStore):
    """A transaction with the test-only requests too."""

    __test__ = False


def connect_for_tests(env: Mapping[str, str], timeout: float = xenstore.DEFAULT_TIMEOUT) -> TestXenStore:
    """Like ``xenstore.connect``, with the test-only requests available."""
    handle = xenstore.connect(env, timeout)
    conn = handle._conn
    conn.__class__ = WatchingConnection  # same transport, plus the watch events it would drop
    conn.events = []
    return TestXenStore(conn)
