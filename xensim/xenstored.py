"""A xenstore wire-protocol server for tests, the demo and the benchmarks.

Standard library only.  Good enough for Debian's libxenstore clients
(``xenstore-read`` & co., with ``XENSTORED_PATH`` naming our socket) and for
``xenscripts.xen.xenstore``.  Every client is treated as privileged dom0:
relative paths resolve under ``/local/domain/0`` and no permission checks
are made (``fail()`` injects errors such as EACCES instead).

Run standalone with ``python xensim/xenstored.py SOCKETPATH``; the socket
file appears only once it is listening.  Stop it with SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

# Message types (xen/include/public/io/xs_wire.h).
XS_CONTROL = 0
XS_DIRECTORY = 1
XS_READ = 2
XS_GET_PERMS = 3
XS_WATCH = 4
XS_UNWATCH = 5
XS_TRANSACTION_START = 6
XS_TRANSACTION_END = 7
XS_INTRODUCE = 8
XS_RELEASE = 9
XS_GET_DOMAIN_PATH = 10
XS_WRITE = 11
XS_MKDIR = 12
XS_RM = 13
XS_SET_PERMS = 14
XS_WATCH_EVENT = 15
XS_ERROR = 16
XS_IS_DOMAIN_INTRODUCED = 17
XS_RESUME = 18
XS_SET_TARGET = 19
XS_RESET_WATCHES = 21
XS_DIRECTORY_PART = 22

PAYLOAD_MAX = 4096
REL_PATH_MAX = 2048
HEADER = struct.Struct("<IIII")
DOM0_PATH = "/local/domain/0"
_VALID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@")
_TYPE_NAMES = {v: k for k, v in globals().items() if k.startswith("XS_")}


class _Error(Exception):
    """An error reply: ``errno_name`` goes back as an XS_ERROR payload."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _absolute(path: str) -> str:
    """Canonical path for the test API (ValueError instead of an error reply)."""
    try:
        return _canonical(path)
    except _Error as e:
        raise ValueError(f"invalid xenstore path {path!r}") from e


class _Node:
    __slots__ = ("children", "gen", "perms", "value")

    def __init__(self, value: str, perms: list[str], gen: int) -> None:
        self.value = value
        self.perms = perms
        self.children: dict[str, None] = {}  # ordered set, creation order like xenstored
        self.gen = gen

    def copy(self) -> _Node:
        node = _Node(self.value, list(self.perms), self.gen)
        node.children = dict(self.children)
        return node


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _is_under(path: str, top: str) -> bool:
    return path == top or top == "/" or path.startswith(top + "/")


class _Tree:
    """The node store: absolute path -> node.  Not locked: the server locks."""

    def __init__(self, nodes: dict[str, _Node], gen: list[int]) -> None:
        self.nodes = nodes
        self._gen = gen  # shared one-element counter

    def _bump(self) -> int:
        self._gen[0] += 1
        return self._gen[0]

    def get(self, path: str) -> _Node:
        node = self.nodes.get(path)
        if node is None:
            raise _Error("ENOENT")
        return node

    def write(self, path: str, value: str) -> None:
        node = self.nodes.get(path)
        if node is None:
            self._create(path, value)
        else:
            node.value = value
            node.gen = self._bump()

    def mkdir(self, path: str) -> None:
        if path not in self.nodes:
            self._create(path, "")

    def _create(self, path: str, value: str) -> None:
        parent = _parent(path)
        if parent not in self.nodes:
            self._create(parent, "")
        pnode = self.nodes[parent]
        gen = self._bump()
        pnode.children[path.rsplit("/", 1)[1]] = None
        pnode.gen = gen
        # New nodes inherit the parent's permissions (the caller is dom0).
        self.nodes[path] = _Node(value, list(pnode.perms), gen)

    def rm(self, path: str) -> list[str]:
        """Remove ``path`` and its subtree; return the removed paths."""
        if path == "/":
            raise _Error("EINVAL")
        if path not in self.nodes:
            if _parent(path) in self.nodes:
                return []  # xenstored: "Didn't exist already? Fine, if parent exists."
            raise _Error("ENOENT")
        removed: list[str] = []
        stack = [path]
        while stack:
            p = stack.pop()
            removed.append(p)
            node = self.nodes.pop(p)
            stack.extend(f"{p}/{c}" for c in node.children)
        pnode = self.nodes[_parent(path)]
        del pnode.children[path.rsplit("/", 1)[1]]
        pnode.gen = self._bump()
        return removed

    def set_perms(self, path: str, perms: list[str]) -> None:
        node = self.get(path)
        node.perms = perms
        node.gen = self._bump()


class _Watch:
    __slots__ = ("conn", "node", "path", "prefix", "token")

    def __init__(self, conn: _Conn, path: str, node: str, token: str, prefix: str) -> None:
        self.conn = conn
        self.path = path  # as the client gave it
        self.node = node  # canonical absolute path (or @special)
        self.token = token
        self.prefix = prefix  # stripped from event paths for relative watches

    def event_path(self, name: str) -> str:
        if self.prefix and name.startswith(self.prefix + "/"):
            return name[len(self.prefix) + 1 :]
        return name


class _Transaction:
    def __init__(self, tree: _Tree) -> None:
        self.tree = _Tree({p: n.copy() for p, n in tree.nodes.items()}, tree._gen)
        self.ops: list[tuple[int, str, object]] = []  # replayed on commit


class _Conn:
    def __init__(self, server: XenstoreServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.send_lock = threading.Lock()
        self.transactions: dict[int, _Transaction] = {}
        self.closed = False

    def send(self, mtype: int, req_id: int, tx_id: int, payload: bytes) -> None:
        data = HEADER.pack(mtype, req_id, tx_id, len(payload)) + payload
        with self.send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def close(self) -> None:
        with self.send_lock:
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while True:
                header = self._recv_exact(HEADER.size)
                if header is None:
                    return
                mtype, req_id, tx_id, length = HEADER.unpack(header)
                if length > PAYLOAD_MAX:
                    return  # xenstored drops such a client
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    return
                self.server._handle(self, mtype, req_id, tx_id, payload)
        except OSError:
            return
        finally:
            self.closed = True
            self.sock.close()
            self.server._forget(self)


def _strings(payload: bytes) -> list[str]:
    """Split a payload of NUL-terminated strings; EINVAL if not terminated."""
    if not payload.endswith(b"\0"):
        raise _Error("EINVAL")
    return payload[:-1].decode("utf-8", "surrogateescape").split("\0")


def _onearg(payload: bytes) -> str:
    args = _strings(payload)
    if len(args) != 1:
        raise _Error("EINVAL")
    return args[0]


def _canonical(path: str, allow_special: bool = False) -> str:
    """Resolve a client path the way xenstored does; EINVAL when invalid."""
    if not path.startswith(("/", "@")):
        path = f"{DOM0_PATH}/{path}"
    if path.startswith("@") and not allow_special:
        raise _Error("EINVAL")
    if (path.endswith("/") and path != "/") or "//" in path or not _VALID.issuperset(path):
        raise _Error("EINVAL")
    rel = path
    parts = path.split("/", 4)
    if len(parts) == 5 and parts[1:3] == ["local", "domain"] and parts[3].isdigit():
        rel = parts[4]
    if len(rel) > REL_PATH_MAX:
        raise _Error("EINVAL")
    return path


def _valid_perms(perms: list[str]) -> list[str]:
    for perm in perms:
        if len(perm) < 2 or perm[0] not in "nrwb" or not perm[1:].isdigit():
            raise _Error("EINVAL")
    return perms


class XenstoreServer:
    """A threaded xenstored stand-in listening on a unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.path = socket_path
        self.writes: list[tuple[str, str]] = []
        self.removes: list[str] = []
        self.requests: list[int] = []  # message types received, in order
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._gen = [0]
        self._tree = _Tree({"/": _Node("", ["n0"], 0)}, self._gen)
        for path, value in (("/tool/xenstored", ""), (f"{DOM0_PATH}/domid", "0"),
                            (f"{DOM0_PATH}/name", "Domain-0")):
            self._tree.write(path, value)
        self._watches: list[_Watch] = []
        self._conns: set[_Conn] = set()
        self._next_tx = 1
        self._failures: dict[str, str] = {}
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Listen on ``self.path`` (atomically: bind elsewhere, then rename)."""
        tmp = f"{self.path}.{os.getpid()}.tmp"
        for p in (tmp, self.path):
            if os.path.exists(p):
                os.unlink(p)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(tmp)
        listener.listen(64)
        os.rename(tmp, self.path)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="xenstored-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; remove the socket file."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            except OSError:
                pass
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and self._listener is listener:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            conn = _Conn(self, sock)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=conn.serve, name="xenstored-conn", daemon=True).start()

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)
            self._watches = [w for w in self._watches if w.conn is not conn]

    # -- direct store access for tests -------------------------------------

    def read(self, path: str) -> str | None:
        """The value at an absolute path, or None."""
        with self._lock:
            node = self._tree.nodes.get(path)
            return None if node is None else node.value

    def write(self, path: str, value: str) -> None:
        """Set a node (creating parents); not logged in ``writes``; fires watches."""
        with self._lock:
            path = _absolute(path)
            self._tree.write(path, value)
            events = self._events([path])
        self._deliver(events)

    def rm(self, path: str) -> None:
        """Remove a subtree (missing is fine); not logged in ``removes``."""
        with self._lock:
            try:
                removed = self._tree.rm(_absolute(path))
            except _Error:
                return
            events = self._events(removed[:1], exact=removed[1:])
        self._deliver(events)

    def get_perms(self, path: str) -> list[str] | None:
        with self._lock:
            node = self._tree.nodes.get(path)
            return None if node is None else list(node.perms)

    def ls(self, prefix: str = "/") -> dict[str, str]:
        """Every node at or under ``prefix`` (absolute paths) -> value."""
        with self._lock:
            return {p: n.value for p, n in self._tree.nodes.items() if _is_under(p, prefix)}

    def fail(self, path: str, errno_name: str | None) -> None:
        """Answer every client request on ``path`` with ``errno_name`` (None: stop).

        Two more than errors: ``"DROP"`` closes the client's connection instead of
        answering, ``"STALL"`` never answers (a hung xenstored)."""
        with self._lock:
            if errno_name is None:
                self._failures.pop(path, None)
            else:
                self._failures[path] = errno_name

    def wait_for(self, path: str, value: str | None, timeout: float = 5.0) -> bool:
        """Wait until ``path`` holds ``value`` (None: is absent); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.read(path) != value:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    # -- protocol ----------------------------------------------------------

    def _events(self, changed: Iterable[str], exact: Iterable[str] = ()) -> list[tuple[_Conn, bytes]]:
        """Watch events for changed nodes (and for nodes removed below one)."""
        self._changed.notify_all()
        out = []
        for name, is_exact in [(n, False) for n in changed] + [(n, True) for n in exact]:
            for w in self._watches:
                if (name == w.node) if is_exact else _is_under(name, w.node):
                    data = f"{w.event_path(name)}\0{w.token}\0".encode("utf-8", "surrogateescape")
                    out.append((w.conn, data))
        return out

    @staticmethod
    def _deliver(events: list[tuple[_Conn, bytes]]) -> None:
        for conn, data in events:
            conn.send(XS_WATCH_EVENT, 0, 0, data)

    def _handle(self, conn: _Conn, mtype: int, req_id: int, tx_id: int, payload: bytes) -> None:
        events: list[tuple[_Conn, bytes]] = []
        with self._lock:
            self.requests.append(mtype)
            try:
                reply = self._dispatch(conn, mtype, tx_id, payload, events)
            except _Error as e:
                mtype, reply = XS_ERROR, e.name.encode() + b"\0"
        if mtype == XS_ERROR and reply in (b"DROP\0", b"STALL\0"):
            if reply == b"DROP\0":
                conn.close()
            return
        conn.send(mtype, req_id, tx_id, reply)
        self._deliver(events)

    def _dispatch(self, conn: _Conn, mtype: int, tx_id: int, payload: bytes,
                  events: list[tuple[_Conn, bytes]]) -> bytes:
        tx = None
        if tx_id:
            tx = conn.transactions.get(tx_id)
            if tx is None:
                raise _Error("ENOENT")
        tree = tx.tree if tx is not None else self._tree

        if mtype in (XS_READ, XS_DIRECTORY, XS_GET_PERMS, XS_MKDIR, XS_RM):
            path = self._checked(_onearg(payload))
            if mtype == XS_READ:
                return tree.get(path).value.encode("utf-8", "surrogateescape")
            if mtype == XS_DIRECTORY:
                reply = "".join(c + "\0" for c in tree.get(path).children).encode()
                if len(reply) > PAYLOAD_MAX:
                    raise _Error("E2BIG")
                return reply
            if mtype == XS_GET_PERMS:
                return "".join(p + "\0" for p in tree.get(path).perms).encode()
            self._change(tx, events, mtype, path, None)
            return b"OK\0"

        if mtype == XS_WRITE:
            end = payload.find(b"\0")
            if end < 0:
                raise _Error("EINVAL")
            path = self._checked(payload[:end].decode("utf-8", "surrogateescape"))
            value = payload[end + 1 :].decode("utf-8", "surrogateescape")
            self._change(tx, events, XS_WRITE, path, value)
            return b"OK\0"

        if mtype == XS_SET_PERMS:
            args = _strings(payload)
            if len(args) < 2:
                raise _Error("EINVAL")
            path = self._checked(args[0])
            self._change(tx, events, XS_SET_PERMS, path, _valid_perms(args[1:]))
            return b"OK\0"

        if mtype == XS_DIRECTORY_PART:
            args = _strings(payload)
            if len(args) != 2:
                raise _Error("EINVAL")
            node = tree.get(self._checked(args[0]))
            children = "".join(c + "\0" for c in node.children).encode()
            off = int(args[1]) if args[1].isdigit() else 0
            gen = f"{node.gen}\0".encode()
            if off >= len(children):
                return gen + b"\0"
            maxlen = PAYLOAD_MAX - len(gen) - 1
            end = off
            while end < len(children):
                nxt = children.index(b"\0", end) + 1
                if nxt - off > maxlen:
                    break
                end = nxt
            return gen + children[off:end] + (b"\0" if end == len(children) else b"")

        if mtype == XS_TRANSACTION_START:
            _onearg(payload)
            if tx is not None:
                raise _Error("EBUSY")
            txid = self._next_tx
            self._next_tx += 1
            conn.transactions[txid] = _Transaction(self._tree)
            return f"{txid}\0".encode()

        if mtype == XS_TRANSACTION_END:
            arg = _onearg(payload)
            if tx is None or arg not in ("T", "F"):
                raise _Error("ENOENT" if tx is None else "EINVAL")
            del conn.transactions[tx_id]
            if arg == "T":
                for op, path, arg2 in tx.ops:
                    try:
                        events += self._perform(self._tree, op, path, arg2, log=True)
                    except _Error:
                        pass  # e.g. a node removed meanwhile: no isolation here
            return b"OK\0"

        if mtype in (XS_WATCH, XS_UNWATCH):
            args = _strings(payload)
            if len(args) != 2:
                raise _Error("EINVAL")
            path, token = args
            watched = _canonical(path, allow_special=True)
            prefix = DOM0_PATH if watched != path else ""
            found = [w for w in self._watches
                     if w.conn is conn and w.node == watched and w.token == token]
            if mtype == XS_UNWATCH:
                if not found:
                    raise _Error("ENOENT")
                self._watches.remove(found[0])
                return b"OK\0"
            if found:
                raise _Error("EEXIST")
            self._watches.append(_Watch(conn, path, watched, token, prefix))
            # xenstored fires every new watch once, straight after the ack.
            events.append((conn, f"{path}\0{token}\0".encode("utf-8", "surrogateescape")))
            return b"OK\0"

        if mtype == XS_RESET_WATCHES:
            self._watches = [w for w in self._watches if w.conn is not conn]
            conn.transactions.clear()
            return b"OK\0"

        if mtype == XS_GET_DOMAIN_PATH:
            domid = _onearg(payload)
            return f"/local/domain/{int(domid) if domid.isdigit() else 0}\0".encode()

        if mtype == XS_IS_DOMAIN_INTRODUCED:
            return b"T\0" if _onearg(payload) == "0" else b"F\0"

        raise _Error("EINVAL")

    def _checked(self, path: str) -> str:
        path = _canonical(path)
        failure = self._failures.get(path)
        if failure:
            raise _Error(failure)
        return path

    def _change(self, tx: _Transaction | None, events: list[tuple[_Conn, bytes]],
                op: int, path: str, arg: object) -> None:
        """Make a client's change, or stage it in its transaction until commit."""
        if tx is not None:
            self._perform(tx.tree, op, path, arg)
            tx.ops.append((op, path, arg))
        else:
            events += self._perform(self._tree, op, path, arg, log=True)

    def _perform(self, tree: _Tree, op: int, path: str, arg: object,
                 log: bool = False) -> list[tuple[_Conn, bytes]]:
        if op == XS_WRITE:
            tree.write(path, str(arg))
            if log:
                self.writes.append((path, str(arg)))
        elif op == XS_MKDIR:
            if path in tree.nodes:
                return []
            tree.mkdir(path)
        elif op == XS_RM:
            removed = tree.rm(path)
            if not removed:
                return []
            if log:
                self.removes.append(path)
            return self._events(removed[:1], exact=removed[1:]) if log else []
        elif op == XS_SET_PERMS:
            tree.set_perms(path, list(arg))  # type: ignore[call-overload]
        return self._events([path]) if log else []


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} SOCKETPATH", file=sys.stderr)
        return 2
    server = XenstoreServer(argv[1]).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"xenstored-sim listening on {server.path}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
