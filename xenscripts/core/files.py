"""Files xenscripts keeps or edits: the state directory, and atomic replacement of a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from .conf import setting
from .errors import HotplugError

DEFAULT_STATE_DIR = "/run/xenscripts"


def state_dir(env: Mapping[str, str], conf: Mapping[str, str]) -> str:
    """Where runs remember what they changed: ``state_dir`` (conf; ``XENSCRIPTS_STATE_DIR`` in tests)."""
    return setting(env, conf, "state_dir", DEFAULT_STATE_DIR)


def write_file_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Replace *path* by a complete new file (temp file + rename); a symlink is followed, not replaced."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        for attempt in range(3):  # a concurrent remove_file(prune=True) may take the directory away
            os.makedirs(directory, mode=0o755, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(prefix=".xenscripts-", dir=directory)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), mode)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise HotplugError(f"Cannot write {path}: {e}") from None


def read_json(path: str) -> Any | None:
    """The JSON document in *path*, or None if there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise HotplugError(f"Cannot read {path}: {e}") from None


def write_json(path: str, data: Any) -> None:
    write_file_atomically(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def remove_file(path: str, prune: bool = False) -> bool:
    """Delete *path*; False if it was not there. *prune*: its directory too once it is empty."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise HotplugError(f"Cannot remove {path}: {e}") from None
    if prune:
        with contextlib.suppress(OSError):  # not empty (another vif's record), or already gone
            os.rmdir(os.path.dirname(path))
    return True
