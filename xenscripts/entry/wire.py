"""The hotplugd wire format, shared by the thin client and the daemon (``time`` its one import).

A frame is a 4-byte little-endian length then that many bytes. The request
is one frame: ``XS2``, start-by, deadline (``CLOCK_MONOTONIC`` seconds),
the command (``vif-bridge``, whatever name the script was called by), argc, argv, then ``KEY=VALUE`` environment entries, all NUL-separated, with
the caller's network-namespace fd in SCM_RIGHTS. Replies are frames whose
first byte says what they are.

The daemon answers every request at once: QUEUED (it has a place in the
bounded queue), REFUSE (it will not run it: the client may), or BUSY (it
cannot start it by start-by: nobody should, running it in-process too would
only add to the overload). Exactly once: when its worker is about to begin,
the daemon sends STARTED and begins only after the client answers with the
single byte GO. A client that has not sent GO by start-by gives up; a client
that sent GO never runs it itself (unless the daemon dies: the commands are
idempotent). The daemon runs nothing after start-by without a GO, nothing
after the deadline, and nothing for a caller that has gone.
"""

import time

_TYPING = False  # mypy's always_true: the socket type for the checker, no import at run time
if _TYPING:
    import _socket

MAGIC = "XS2"
STDERR = b"E"  # some of the command's stderr
STDOUT = b"O"  # some of the command's stdout (a status report, a plan)
EXIT = b"X"  # the exit status, as decimal digits; the last frame
REFUSE = b"R"  # the daemon will not run this request: the client runs it itself
QUEUED = b"Q"  # admitted: STARTED follows, before start-by
BUSY = b"B"  # overloaded, with the reason: not run, and not to be run in-process either
STARTED = b"S"  # the worker is about to begin: the client answers GO to let it
GO = b"G"  # one byte from the client (not a frame): run it, I will wait
DEFAULT_SOCKET = "/run/xenscripts/hotplugd.sock"
MAX_FRAME = 1 << 20


def frame(payload: bytes) -> bytes:
    """Length-prefix *payload*."""
    return len(payload).to_bytes(4, "little") + payload


def encode_request(command: str, argv: list[str], env: dict[str, str], start_by: float, deadline: float) -> bytes:
    """The request to run *command* with *argv* and *env*, started by *start_by* and done by *deadline*."""
    fields = [MAGIC, repr(start_by), repr(deadline), command, str(len(argv)), *argv,
              *(f"{k}={v}" for k, v in env.items())]
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def decode_request(payload: bytes) -> tuple[str, list[str], dict[str, str], float, float]:
    """Inverse of encode_request: command, argv, env, start-by, deadline; ValueError if malformed."""
    fields = payload.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 5 or fields[0] != MAGIC:
        raise ValueError("not a hotplugd request")
    start_by, deadline, command, argc = float(fields[1]), float(fields[2]), fields[3], int(fields[4])
    if argc < 1 or len(fields) < 5 + argc:
        raise ValueError("bad argument count")
    argv = fields[5 : 5 + argc]
    env = {}
    for entry in fields[5 + argc :]:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(f"bad environment entry {entry!r}")
        env[key] = value
    return command, argv, env, start_by, deadline


def connect_unix(sock: "_socket.socket", path: str, by: float) -> None:
    """Connect *sock* to the unix socket *path*, waiting out a full listen backlog until *by*.

    Under a boot storm a full backlog is EAGAIN on a socket with a timeout (BlockingIOError):
    retried every 5 ms; TimeoutError at *by*. The thin client and the xenstore client both use it.
    """
    while True:
        sock.settimeout(max(0.01, by - time.monotonic()))
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= by:
                raise TimeoutError() from None
            time.sleep(0.005)
