"""The hotplugd wire format, shared by the thin client and the daemon (no imports).

A frame is a 4-byte little-endian length then that many bytes. The request
is one frame: ``XS1``, argc, argv, then ``KEY=VALUE`` environment entries, all
NUL-separated, with the caller's network-namespace fd in SCM_RIGHTS. Replies
are frames whose first byte says what they are.
"""

MAGIC = "XS1"
STDERR = b"E"  # some of the command's stderr
EXIT = b"X"  # the exit status, as decimal digits; the last frame
REFUSE = b"R"  # the daemon will not run this request: the client runs it itself
DEFAULT_SOCKET = "/run/xenscripts/hotplugd.sock"
MAX_FRAME = 1 << 20


def frame(payload: bytes) -> bytes:
    """Length-prefix *payload*."""
    return len(payload).to_bytes(4, "little") + payload


def encode_request(argv: list[str], env: dict[str, str]) -> bytes:
    """The request payload for *argv* and *env*."""
    fields = [MAGIC, str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def decode_request(payload: bytes) -> tuple[list[str], dict[str, str]]:
    """Inverse of encode_request; ValueError on anything malformed."""
    fields = payload.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 2 or fields[0] != MAGIC:
        raise ValueError("not a hotplugd request")
    argc = int(fields[1])
    if argc < 1 or len(fields) < 2 + argc:
        raise ValueError("bad argument count")
    argv = fields[2 : 2 + argc]
    env = {}
    for entry in fields[2 + argc :]:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(f"bad environment entry {entry!r}")
        env[key] = value
    return argv, env
