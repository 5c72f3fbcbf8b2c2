"""dnsmasq as the NAT guests' DHCP server: one process, its files under the state directory.

network-nat start runs it bound to every interface but netdev and lo (it
answers only where an address matches its range: the vifs' router
addresses); vif-nat edits its hosts file and sends SIGHUP to reload it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import HotplugError, MissingComponent
from ..core.files import remove_file, write_file_atomically
from . import NAT_NETMASK, NAT_SUBNET, DhcpHost, checked

DNSMASQ = "/usr/sbin/dnsmasq"
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class DnsmasqFiles:
    """``<state_dir>/dnsmasq/{pid,hosts,leases}``."""

    directory: str
    pid: str
    hosts: str
    leases: str

    @classmethod
    def under(cls, state_dir: str) -> DnsmasqFiles:
        base = os.path.join(state_dir, "dnsmasq")
        return cls(directory=base, pid=f"{base}/pid", hosts=f"{base}/hosts", leases=f"{base}/leases")


def prepare_directory(files: DnsmasqFiles) -> None:
    """dnsmasq's own directory, private like the state directory it is in."""
    try:
        os.makedirs(files.directory, mode=0o700, exist_ok=True)
    except OSError as e:
        raise HotplugError(f"Cannot prepare {files.directory}: {e}") from None


def dnsmasq_argv(files: DnsmasqFiles, netdev: str, binary: str = DNSMASQ) -> list[str]:
    """The command line: DHCP only (no DNS), never on netdev, fixed hosts from the hosts file.

    It stays root, as ISC dhcpd does on Debian: hotplugd's unit has no
    CAP_KILL, so a dnsmasq that became ``nobody`` could be neither reloaded
    nor stopped through it, nor read its hosts file in the private state
    directory.
    """
    return [binary, "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root", f"--pid-file={files.pid}",
            f"--dhcp-leasefile={files.leases}", f"--dhcp-hostsfile={files.hosts}",
            f"--dhcp-range={NAT_SUBNET},static,{NAT_NETMASK}", f"--except-interface={netdev}",
            "--except-interface=lo", "--dhcp-authoritative"]


def running_pid(files: DnsmasqFiles) -> int | None:
    """The pid of our dnsmasq if it is alive (its pid file names a dnsmasq process, not a zombie)."""
    try:
        with open(files.pid, encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return pid if pid > 0 and name == "dnsmasq" and rest.split()[:1] != ["Z"] else None


def start_dnsmasq(files: DnsmasqFiles, netdev: str, debug: Callable[[str], None]) -> bool:
    """Start dnsmasq unless it runs; True if it was started now."""
    if running_pid(files) is not None:
        debug(f"dnsmasq already running (pid file {files.pid})")
        return False
    prepare_directory(files)
    if not os.path.exists(files.hosts):
        write_file_atomically(files.hosts, "")
    argv = dnsmasq_argv(files, netdev)
    debug("starting " + " ".join(argv))
    # A file, not a pipe, for its errors: the daemonised dnsmasq keeps the descriptor open.
    with tempfile.TemporaryFile("w+") as errors:
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                    timeout=10, check=False)
        except FileNotFoundError:
            raise MissingComponent(f"Cannot start dnsmasq: {argv[0]} is not installed (Debian package "
                                   "dnsmasq-base): 'apt-get install dnsmasq-base', or use dhcp=isc or dhcp=no") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HotplugError(f"Cannot start dnsmasq: {e}") from None
        if result.returncode != 0:
            errors.seek(0)
            raise HotplugError(f"dnsmasq failed to start (status {result.returncode}): {errors.read().strip()}")
    return True


def stop_dnsmasq(files: DnsmasqFiles, debug: Callable[[str], None]) -> bool:
    """Stop our dnsmasq and remove its pid and lease files; True if one was running."""
    pid = running_pid(files)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while running_pid(files) == pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)
        debug(f"stopped dnsmasq (pid {pid})")
    remove_file(files.pid)
    remove_file(files.leases)
    if os.path.exists(files.hosts) and not read_hosts(files):
        remove_file(files.hosts)
    try:
        os.rmdir(files.directory)
    except OSError:
        pass  # guests' host lines are kept for the next start
    return pid is not None


def read_hosts(files: DnsmasqFiles) -> list[str]:
    try:
        with open(files.hosts, encoding="utf-8") as f:
            return [line for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    except OSError as e:
        raise HotplugError(f"Cannot read {files.hosts}: {e}") from None


def host_line(host: DhcpHost) -> str:
    """``MAC,ADDRESS,HOSTNAME,infinite`` (dnsmasq's dhcp-host syntax; each field checked: a comma or a
    newline in one would make another entry)."""
    checked(host)
    return f"{host.mac},{host.address},{host.hostname},infinite"


def _same_guest(line: str, host: DhcpHost) -> bool:
    """Exact field match on hostname or MAC (never a substring: dom1 is not dom10)."""
    fields = line.split(",")
    return host.hostname in fields[1:] or (bool(host.mac) and fields[0].lower() == host.mac.lower())


def update_host(files: DnsmasqFiles, host: DhcpHost, present: bool, debug: Callable[[str], None]) -> bool:
    """Add (*present*) or remove *host*'s line; reload dnsmasq if the file changed. True if it changed."""
    lines = read_hosts(files)
    wanted = [line for line in lines if not _same_guest(line, host)] + ([host_line(host)] if present else [])
    if wanted == lines:
        return False
    prepare_directory(files)
    write_file_atomically(files.hosts, "".join(f"{line}\n" for line in wanted))
    pid = running_pid(files)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
        debug(f"dnsmasq (pid {pid}) reloads {files.hosts}")
    else:
        debug(f"dnsmasq is not running; {files.hosts} is read when network-nat starts it")
    return True
