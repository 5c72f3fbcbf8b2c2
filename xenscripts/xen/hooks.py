"""``vif-post.d`` hooks: executable ``*.hook`` files, sourced by bash with the script's variables."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ..core.errors import HotplugError

DEFAULT_SCRIPT_DIR = "/etc/xen/scripts"
# What a hook sees: the variables upstream's hooks use, never an argv key of the caller's choosing.
HOOK_VARIABLES = ("command", "type_if", "dev", "vif", "vifname", "bridge", "ip", "main_ip", "netdev",
                  "mac", "XENBUS_PATH", "XENSTORED_PATH", "vif_ip", "router_ip", "hostname", "dhcp")
HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOOKS_TIMEOUT = 20.0  # for all of a run's hooks together: the run must end well before libxl's 40 s


def hook_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The documented hook variables present in *variables*, a fixed PATH and upstream's LANG."""
    env = {k: variables[k] for k in HOOK_VARIABLES if k in variables}
    env.update(PATH=HOOK_PATH, LANG="POSIX")
    return env


def call_hooks(script_dir: str, kind: str, phase: str, variables: Mapping[str, str],
               timeout: float = HOOKS_TIMEOUT) -> None:
    """Source each executable hook in ``<script_dir>/<kind>-<phase>.d`` in its own bash.

    Upstream sources hooks into the running script; here each gets the
    documented variables exported. A failing or hanging hook is a fatal error,
    as upstream's ERR trap makes it; a hung hook is killed with its children.
    """
    directory = os.path.join(script_dir, f"{kind}-{phase}.d")
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".hook"))
    except OSError:
        return
    import subprocess  # only a host with hooks pays for it

    env = hook_environment(variables)
    deadline = time.monotonic() + timeout
    for name in names:
        path = os.path.join(directory, name)
        if not os.access(path, os.X_OK):
            continue
        proc = subprocess.Popen(["/bin/bash", "-c", '. "$0"', path], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise HotplugError(f"hook {path} did not finish within {timeout:g} s; killed it") from None
        if proc.returncode != 0:
            detail = stderr.strip()
            raise HotplugError(f"hook {path} failed with status {proc.returncode}" + (f": {detail}" if detail else ""))


def _kill_group(proc) -> None:
    """Kill a hook and everything it started (its own session), then reap it."""
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.communicate()
