"""The installed entry files' format (``bin/``): how a file says it is ours and which command it runs."""

from __future__ import annotations

# Every file we install carries this text: it is how "is this one ours?" is answered.
MARKER = "xenscripts entry point"
_ENTRY = f'"""{MARKER} for '.encode()  # then the command name and a colon (see bin/)


def command_of_file(path: str) -> str | None:
    """The command an installed entry file runs (whatever it is called), or None if not ours."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    at = head.find(_ENTRY)
    name = head[at + len(_ENTRY):].split(b":", 1)[0] if at >= 0 else b""
    return name.decode() if name and name.replace(b"-", b"").isalpha() else None


def is_entry_file(path: str) -> bool:
    """True when *path* carries the marker in its first 4 KiB (an entry file, or the admin's ``xenscripts``)."""
    try:
        with open(path, "rb") as f:
            return MARKER.encode() in f.read(4096)
    except OSError:
        return False
