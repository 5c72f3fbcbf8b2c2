"""The ``nft`` command in place of python3-nftables' ``Nftables``, for hosts without the binding.

The same results through a fork per transaction (~2.5 ms instead of ~0.1 ms),
so a host without python3-nftables still gets every rule. Only the calls
``nft.py`` makes: ``set_handle_output``, ``cmd`` and ``json_cmd``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from ..errors import HotplugError, MissingComponent
from .detect import SBIN_PATH

TIMEOUT = 20.0
MISSING_BINDING = ("the nftables Python binding is not installed (Debian package python3-nftables): "
                   "rules go through the nft command instead, a fork per transaction; "
                   "'apt-get install python3-nftables' makes it fast again")


class CommandNftables:
    """``nftables.Nftables`` as far as ``nft.py`` uses it, running ``nft -f -`` (in the caller's namespace)."""

    def __init__(self, nft: str) -> None:
        self.nft = nft
        self.handles = False

    def set_handle_output(self, on: bool) -> bool:
        old, self.handles = self.handles, on
        return old

    def cmd(self, text: str, json_input: bool = False) -> tuple[int, str, str]:
        argv = [self.nft, *(["-a"] if self.handles else []), *(["-j"] if json_input else []), "-f", "-"]
        try:
            cp = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise HotplugError(f"nft: no answer within {TIMEOUT:g} s") from None
        return cp.returncode, cp.stdout, cp.stderr

    def json_cmd(self, doc: dict) -> tuple[int, Any, str]:
        rc, out, err = self.cmd(json.dumps(doc), json_input=True)
        return rc, (json.loads(out) if out.strip() else ""), err


class CommandBinding:
    """Stands in for the ``nftables`` module; *degraded* says what is missing and how to fix it."""

    degraded = MISSING_BINDING

    def __init__(self, nft: str) -> None:
        self.nft = nft

    def Nftables(self) -> CommandNftables:
        return CommandNftables(self.nft)


def command_binding() -> CommandBinding:
    """The nft command as the binding; MissingComponent when the nftables package is missing too."""
    nft = shutil.which("nft", path=SBIN_PATH)
    if nft is None:
        raise MissingComponent("neither the nftables Python binding (python3-nftables) nor the nft command "
                               "(nftables) is installed: 'apt-get install python3-nftables nftables', "
                               "or use firewall=legacy or firewall=none in /etc/xen/xenscripts.conf")
    return CommandBinding(nft)
