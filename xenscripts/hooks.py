"""``vif-post.d`` hooks: executable ``*.hook`` files, sourced by bash with the script's variables."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import HotplugError

DEFAULT_SCRIPT_DIR = "/etc/xen/scripts"


def call_hooks(script_dir: str, kind: str, phase: str, variables: Mapping[str, str]) -> None:
    """Source each executable hook in ``<script_dir>/<kind>-<phase>.d`` in its own bash.

    Upstream sources hooks into the running script; here each gets the same
    variables (``command``, ``dev``, ``bridge``, ``ip``, ``XENBUS_PATH``, …)
    exported. A failing hook is a fatal error, as upstream's ERR trap makes it.
    """
    directory = os.path.join(script_dir, f"{kind}-{phase}.d")
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".hook"))
    except OSError:
        return
    import subprocess  # only a host with hooks pays for it

    for name in names:
        path = os.path.join(directory, name)
        if not os.access(path, os.X_OK):
            continue
        result = subprocess.run(["/bin/bash", "-c", '. "$0"', path], env=dict(variables),
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                                check=False)
        if result.returncode != 0:
            detail = result.stderr.strip()
            raise HotplugError(f"hook {path} failed with status {result.returncode}" + (f": {detail}" if detail else ""))
