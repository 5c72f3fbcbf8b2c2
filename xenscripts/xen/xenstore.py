"""Xenstore client: the xenstored wire protocol, standard library only.

One connection per run, over the unix socket named by ``XENSTORED_PATH``
(else ``/run/xenstored/socket``, ``/var/run/xenstored/socket``), or else
the xenbus device (``/dev/xen/xenbus``, ``/proc/xen/xenbus``): the same
protocol over a character device.  Every request is bounded by a timeout so
a hung xenstored cannot keep a hotplug script past libxl's 40 s kill.

Relative paths are sent as they are: xenstored resolves them under
``/local/domain/<caller's domid>``, as it does for libxenstore.

    with connect(env) as xs:
        bridge = xs.read(backend + "/bridge")
        xs.write_many([(backend + "/hotplug-error", msg),
                       (backend + "/hotplug-status", "error")])

Imports are kept to built-in modules (``_socket``, not ``socket``) and the
wire module's ``connect_unix`` (standard library only): this module is
imported on every hotplug run.
"""

from __future__ import annotations

import _socket
import errno as _errno
import os
import select
import struct
import time

from ..entry.wire import connect_unix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType
    from typing import Self

# Message types (xen/include/public/io/xs_wire.h).
XS_DIRECTORY = 1
XS_READ = 2
XS_GET_PERMS = 3
XS_WATCH = 4
XS_UNWATCH = 5
XS_TRANSACTION_START = 6
XS_TRANSACTION_END = 7
XS_GET_DOMAIN_PATH = 10
XS_WRITE = 11
XS_MKDIR = 12
XS_RM = 13
XS_SET_PERMS = 14
XS_WATCH_EVENT = 15
XS_ERROR = 16
XS_RESET_WATCHES = 21
XS_DIRECTORY_PART = 22

PAYLOAD_MAX = 4096
DEFAULT_TIMEOUT = 10.0
SOCKET_PATHS = ("/run/xenstored/socket", "/var/run/xenstored/socket")
DEVICE_PATHS = ("/dev/xen/xenbus", "/proc/xen/xenbus")
_HEADER = struct.Struct("<IIII")  # type, req_id, tx_id, len
_RETRIES = 5  # transaction commits that meet EAGAIN; DIRECTORY_PART restarts


class XenStoreError(OSError):
    """An error from xenstored (``errno`` is set from the name it sent, e.g. EACCES)."""

    def __init__(self, name: str, path: str = "") -> None:
        super().__init__(getattr(_errno, name, _errno.EIO), name, path)
        self.name = name


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _strings(body: bytes) -> list[str]:
    """Split a reply made of NUL-terminated strings."""
    return [_dec(s) for s in body.split(b"\0")[:-1]]


class _Connection:
    """The transport: one file descriptor (socket or xenbus device)."""

    def __init__(self, fd: int, sock: _socket.socket | None, timeout: float) -> None:
        self.fd = fd
        self.sock = sock  # keeps the socket object (and so the fd) alive
        self.timeout = timeout
        self.req_id = 0
        self.buf = b""

    def close(self) -> None:
        if self.fd < 0:
            return
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)
        self.fd = -1

    def _wait(self, events: int, deadline: float | None) -> bool:
        poller = select.poll()
        poller.register(self.fd, events)
        if deadline is None:
            return bool(poller.poll())
        left = deadline - time.monotonic()
        return left > 0 and bool(poller.poll(left * 1000))

    def _fail(self, name: str, path: str) -> XenStoreError:
        self.close()  # the stream can no longer be trusted
        return XenStoreError(name, path)

    def _read_message(self, deadline: float | None, path: str) -> tuple[int, int, bytes] | None:
        """Next whole message (type, req_id, payload); None at the deadline."""
        while True:
            if len(self.buf) >= _HEADER.size:
                mtype, req_id, _tx, length = _HEADER.unpack_from(self.buf)
                end = _HEADER.size + length
                if len(self.buf) >= end:
                    body, self.buf = self.buf[_HEADER.size : end], self.buf[end:]
                    return mtype, req_id, body
            if not self._wait(select.POLLIN, deadline):
                return None
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                raise self._fail(_errno.errorcode.get(e.errno or 0, "EIO"), path) from e
            if not chunk:
                raise self._fail("ECONNRESET", path)
            self.buf += chunk

    def request(self, mtype: int, payload: bytes, tx: int, path: str) -> bytes:
        """Send one request and return its reply's payload; raise on XS_ERROR."""
        if self.fd < 0:
            raise XenStoreError("EBADF", path)
        if len(payload) > PAYLOAD_MAX:
            raise XenStoreError("E2BIG", path)
        self.req_id = (self.req_id + 1) & 0xFFFFFFFF
        data = _HEADER.pack(mtype, self.req_id, tx, len(payload)) + payload
        deadline = time.monotonic() + self.timeout
        while data:  # the xenbus device wants a whole message per write
            if not self._wait(select.POLLOUT, deadline):
                raise self._fail("ETIMEDOUT", path)
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                continue
            except OSError as e:
                raise self._fail(_errno.errorcode.get(e.errno or 0, "EIO"), path) from e
        while True:
            msg = self._read_message(deadline, path)
            if msg is None:
                raise self._fail("ETIMEDOUT", path)
            rtype, rid, body = msg
            if rtype == XS_WATCH_EVENT:
                continue  # this client never watches (the tests' watches: tests/xenstore_api.py)
            if rid == self.req_id:
                if rtype == XS_ERROR:
                    raise XenStoreError(_dec(body.rstrip(b"\0")) or "EIO", path)
                return body


class XenStore:
    """A xenstore handle; methods use the handle's transaction, if any."""

    def __init__(self, conn: _Connection, tx: int = 0) -> None:
        self._conn = conn
        self._tx = tx

    def _req(self, mtype: int, path: str, *args: str, value: str | None = None) -> bytes:
        payload = b"".join(_enc(s) + b"\0" for s in (path, *args))
        if value is not None:
            payload += _enc(value)  # a value is not NUL-terminated
        return self._conn.request(mtype, payload, self._tx, path)

    def read(self, path: str) -> str | None:
        """The node's value, or None if it does not exist."""
        try:
            return _dec(self._req(XS_READ, path))
        except XenStoreError as e:
            if e.errno == _errno.ENOENT:
                return None
            raise

    def exists(self, path: str) -> bool:
        """Whether the node exists (as xenstore-exists: a READ that succeeds)."""
        return self.read(path) is not None

    def write(self, path: str, value: str) -> None:
        """Set a node; xenstored creates missing parents with empty values."""
        self._req(XS_WRITE, path, value=value)

    def write_many(self, pairs: Iterable[tuple[str, str]], only_if_exists: str | None = None) -> bool:
        """Several writes made visible together (one transaction, EAGAIN retried).

        With *only_if_exists*, nothing is written unless that node exists, checked in the
        same transaction (so a directory removed meanwhile is never re-created). True if written."""
        pairs = list(pairs)
        if self._tx:
            if only_if_exists is not None and not self.exists(only_if_exists):
                return False
            for path, value in pairs:
                self.write(path, value)
            return True
        for attempt in range(_RETRIES):
            try:
                with self.transaction() as t:
                    if only_if_exists is not None and not t.exists(only_if_exists):
                        return False
                    for path, value in pairs:
                        t.write(path, value)
                return True
            except XenStoreError as e:
                if e.errno != _errno.EAGAIN or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def directory(self, path: str) -> list[str]:
        """Names of the node's children ([] if it does not exist)."""
        try:
            return _strings(self._req(XS_DIRECTORY, path))
        except XenStoreError as e:
            if e.errno == _errno.ENOENT:
                return []
            if e.errno != _errno.E2BIG:
                raise
        return self._directory_part(path)

    def _directory_part(self, path: str) -> list[str]:
        """A child list too big for one reply, read in parts (as libxenstore)."""
        for _ in range(_RETRIES):
            names: list[str] = []
            offset, generation = 0, None
            while True:
                body = self._req(XS_DIRECTORY_PART, path, str(offset))
                gen, _, rest = body.partition(b"\0")
                if generation is not None and gen != generation:
                    break  # the directory changed meanwhile: start again
                generation = gen
                items = rest.split(b"\0")[:-1]
                done = bool(items) and items[-1] == b""
                if done:
                    items.pop()
                if not done and not items:
                    raise XenStoreError("EIO", path)
                names += [_dec(i) for i in items]
                offset += sum(len(i) + 1 for i in items)
                if done:
                    return names
        raise XenStoreError("EAGAIN", path)

    def transaction(self) -> Transaction:
        """Start a transaction: ``with xs.transaction() as t: t.write(...)``.

        Leaving the block commits (XenStoreError EAGAIN: the caller retries)
        or, on an exception, aborts."""
        body = self._conn.request(XS_TRANSACTION_START, b"\0", self._tx, "")
        return Transaction(self._conn, int(body.rstrip(b"\0")))

    def close(self) -> None:
        """Close the connection (shared with any transactions)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Transaction(XenStore):
    """A XenStore handle whose requests belong to one transaction."""

    def _end(self, commit: bool) -> None:
        if self._tx:
            tx, self._tx = self._tx, 0
            self._conn.request(XS_TRANSACTION_END, b"T\0" if commit else b"F\0", tx, "")

    def commit(self) -> None:
        """Apply the transaction's changes atomically (EAGAIN: try it all again)."""
        self._end(True)

    def abort(self) -> None:
        """Discard the transaction's changes."""
        self._end(False)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
            return
        try:
            self.abort()
        except OSError:
            pass  # the original exception matters more


def _open(path: str, timeout: float) -> _Connection:
    """Connect to a xenstored socket, or open a xenbus character device."""
    try:
        if path.startswith(DEVICE_PATHS) or path.startswith("/dev/"):
            return _Connection(os.open(path, os.O_RDWR | os.O_CLOEXEC), None, timeout)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            connect_unix(sock, path, time.monotonic() + timeout)  # a full backlog (a boot storm) is waited out
        except BaseException:
            sock.close()
            raise
        return _Connection(sock.fileno(), sock, timeout)
    except OSError as e:
        if isinstance(e, TimeoutError):
            raise XenStoreError("ETIMEDOUT", path) from e
        raise XenStoreError(_errno.errorcode.get(e.errno or 0, "EIO"), path) from e


def connect(env: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT) -> XenStore:
    """Open the one xenstore connection of this run.

    ``env["XENSTORED_PATH"]``, when set, is the only place tried (a socket,
    or a device under /dev).  Otherwise the standard sockets, then the
    xenbus device.  Raises XenStoreError (an OSError) when none answers."""
    explicit = env.get("XENSTORED_PATH")
    paths = (explicit,) if explicit else SOCKET_PATHS + DEVICE_PATHS
    errors: list[XenStoreError] = []
    for path in paths:
        try:
            return XenStore(_open(path, timeout))
        except XenStoreError as e:
            errors.append(e)
    # Report the most telling failure first (a refusal beats a missing file), then every path tried.
    errors.sort(key=lambda e: e.errno == _errno.ENOENT)
    first = errors[0]
    tried = "; ".join(f"{e.filename}: {e.strerror}" for e in errors)
    hint = "is xenstored running (systemctl status xenstored)?" if not explicit else "check XENSTORED_PATH"
    raise XenStoreError(first.name, f"{tried}; {hint}")
