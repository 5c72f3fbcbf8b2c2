"""Which backend writes rules on this host (``firewall=auto``), decided in the caller's namespace.

nftables when the host uses it (``iptables`` is iptables-nft, or no legacy
table is loaded); legacy xtables when legacy tables are loaded and either
``iptables`` is the legacy one or those tables hold rules. Never both.
``/proc/thread-self/net`` is the calling thread's namespace (the daemon's
threads ``setns``); ``/proc/self/net`` would be the daemon's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PROC_NET = "/proc/thread-self/net"
SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"


def tool(name: str) -> str:
    """The path of an xtables tool, found in the sbin directories whatever PATH the caller had."""
    return shutil.which(name, path=SBIN_PATH) or name


def table_names_listed(name: str, proc_net: str = PROC_NET) -> bool:
    """True when ``/proc/thread-self/net/<name>`` (e.g. ``ip_tables_names``) lists a table."""
    try:
        with open(os.path.join(proc_net, name), encoding="ascii") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def legacy_tables_loaded(proc_net: str = PROC_NET) -> bool:
    """True when this namespace has a legacy (x_tables) IPv4 or IPv6 table."""
    return any(table_names_listed(name, proc_net) for name in ("ip_tables_names", "ip6_tables_names"))


def iptables_is_legacy(path: str = SBIN_PATH) -> bool:
    """True when the ``iptables`` command is xtables-legacy-multi (alternatives)."""
    found = shutil.which("iptables", path=path)
    return found is not None and os.path.basename(os.path.realpath(found)).startswith("xtables-legacy")


def auto_backend(proc_net: str = PROC_NET, path: str = SBIN_PATH) -> tuple[str, str]:
    """``(backend, why)`` for ``firewall=auto``."""
    if not legacy_tables_loaded(proc_net):
        return "nft", "no legacy xtables table is loaded"
    if iptables_is_legacy(path):
        return "legacy", "iptables is iptables-legacy and legacy tables are loaded"
    if legacy_has_rules():
        return "legacy", "legacy xtables tables hold rules"
    return "nft", "iptables is iptables-nft and the legacy tables are empty"


def legacy_has_rules() -> bool:
    """True when legacy iptables tables hold any rule (a mixed host: legacy wins)."""
    try:
        cp = subprocess.run([tool("iptables-legacy-save")], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.startswith("-A ") for line in cp.stdout.splitlines())
