"""Boot storms on a simulated host: many cheap guest NICs, and their hotplug scripts released at one instant.

As libxl starts many domains at once: every NIC's process is spawned first
(``ip netns exec <dom0> sh -c 'read _ </dev/fd/FD; exec "$@"' <script> <phase>
type_if=vif`` with libxl's environment and argv), each blocks reading one
shared pipe, and closing the pipe's write end releases them all together;
each is SIGKILLed 40 s after the release (``LIBXL_HOTPLUG_TIMEOUT``), as
libxl kills the script's pid. Cheap guests: every vif's peer end lives in one
shared "guests" namespace (up, with the guest's MAC); IPv6 is off in both
namespaces (2000 links' multicast flooded by the bridge would be the storm
measured instead). Used by ``bench/bench_burst.py`` and the burst test.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .host import SimHost

KILL_AFTER = 40.0  # LIBXL_HOTPLUG_TIMEOUT
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds of *pid* and of the children it has waited for (hotplugd's iptables-*-restore, ovs-ofctl...)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime


class BurstError(RuntimeError):
    pass


def add_cheap_guests(host: SimHost, count: int, bridge: str = "xenbr0", script: str = "vif-bridge") -> list[int]:
    """*count* guest NICs ``vif<D>.0`` (D = 1..count) whose peers live in one shared namespace."""
    guests_ns = host.prefix + "guests"
    host._add_ns(guests_ns)
    for ns in (host.dom0, guests_ns):
        for conf in ("default", "all"):
            host.sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
    domids = list(range(1, count + 1))
    lines = [f"link add vif{d}.0 type veth peer name e{d} netns {guests_ns}" for d in domids]
    _batch(host.dom0, lines)
    _batch(guests_ns, [f"link set e{d} address {host.default_mac(d)} up" for d in domids])
    for d in domids:
        be, fe = f"/local/domain/0/backend/vif/{d}/0", f"/local/domain/{d}/device/vif/0"
        mac = host.default_mac(d)
        for k, v in {"frontend": fe, "frontend-id": str(d), "online": "1", "state": "2",
                     "script": f"/etc/xen/scripts/{script}", "mac": mac, "bridge": bridge,
                     "handle": "0", "type": "vif", "hotplug-status": ""}.items():
            host.xs.write(f"{be}/{k}", v)
        for k, v in {"backend": be, "backend-id": "0", "state": "1", "handle": "0", "mac": mac}.items():
            host.xs.write(f"{fe}/{k}", v)
        host.xs.write(f"/local/domain/{d}/name", f"guest{d}")
        host.xs.write(f"/local/domain/{d}/vm", f"/vm/{host.vm_uuid(d)}")  # vif-openvswitch's external-ids
        host.xs.write(f"/vm/{host.vm_uuid(d)}/name", f"guest{d}")
        host.xs.write(f"/vm/{host.vm_uuid(d)}/uuid", host.vm_uuid(d))
    return domids


def _batch(ns: str, lines: list[str]) -> None:
    cp = subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n",
                        capture_output=True, text=True, timeout=600, check=False)
    if cp.returncode != 0:
        raise BurstError(f"ip -batch in {ns} failed: {cp.stderr.strip()[:500]}")


def burst(host: SimHost, argv0: list[str], phase: str, domids: list[int], env_extra: dict,
          outdir: str) -> tuple[float, dict[int, tuple[float, int, float]]]:
    """Spawn every NIC's process blocked on one pipe, release them together, kill each at 40 s.

    Returns the wall time and, per domid, (seconds after the release, wait status, CPU seconds)."""
    r, w = os.pipe()
    procs: dict[int, int] = {}  # pid -> domid
    leader = 0
    try:
        for d in domids:
            env = host.env_for(d, script=argv0[-1], extra=env_extra)
            cmd = ["ip", "netns", "exec", host.dom0, "sh", "-c", f'read _ </dev/fd/{r}; exec "$@"', "sh",
                   *argv0, phase, "type_if=vif"]
            with open(os.path.join(outdir, f"{d}.out"), "wb") as out:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, pass_fds=(r,), process_group=leader)
            leader = leader or p.pid
            procs[p.pid] = d
            p.returncode = 0  # reaped below, by process group: stop subprocess from reaping it
    finally:
        os.close(r)
    _wait_blocked(list(procs))
    release = time.monotonic()
    os.close(w)
    done: dict[int, tuple[float, int, float]] = {}
    left = set(procs)
    killed = False
    while left:
        pid, status, ru = os.wait4(-leader, os.WNOHANG)
        if pid == 0:
            if not killed and time.monotonic() - release >= KILL_AFTER:
                for victim in left:
                    try:
                        os.kill(victim, 9)  # libxl kills the script's pid, once
                    except ProcessLookupError:
                        pass
                killed = True
            time.sleep(0.002)
            continue
        if pid in left:
            left.discard(pid)
            done[procs[pid]] = (time.monotonic() - release, status, ru.ru_utime + ru.ru_stime)
    return time.monotonic() - release, done


def _wait_blocked(pids: list[int], timeout: float = 120.0) -> None:
    """Until every process sits in the pipe read (spawned, namespace entered, shell started)."""
    deadline = time.monotonic() + timeout
    waiting = list(pids)
    while waiting:
        still = []
        for pid in waiting:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and "pipe_read" not in Path(f"/proc/{pid}/wchan").read_text():
                    still.append(pid)  # not exited (a failure, seen later), not blocked yet
            except OSError:
                pass  # exited already (a failure, seen later)
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                pid = waiting[0]
                seen = " ".join(Path(f"/proc/{pid}/{f}").read_text(errors="replace").replace("\0", " ")[:120]
                                for f in ("wchan", "cmdline") if os.path.exists(f"/proc/{pid}/{f}"))
                raise BurstError(f"{len(waiting)} processes never blocked on the release pipe (e.g. {seen})")
            time.sleep(0.05)
