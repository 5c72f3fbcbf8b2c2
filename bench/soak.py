"""Soak: many online/offline cycles through one hotplugd, several vifs at a time; does anything leak?

Run as root from the repository root::

    .venv/bin/python bench/soak.py [--cycles 10000] [--parallel 8] [--config default|antispoof-nft|...]

One simulated host with ``--parallel`` cheap guest NICs; each round brings
all of them online at once (libxl's argv and environment, through the thin
client and one hotplugd), checks every one ``connected`` and a port of
xenbr0, then takes them all offline at once and checks them gone. A cycle
is one NIC's online + offline. The daemon's resident memory, open fds and
threads are read from /proc after a warm-up of a few rounds (the baseline)
and at the end; then the lock dir and the firewall records must be empty.
Prints the figures; exit 1 if a cycle failed or a limit was passed
(RSS growth 10 MB, fds and threads back to the baseline).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_burst import CONFIGS

from xensim.burst import add_cheap_guests
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import client_option, our_command, use_client
from xensim.xenstored import XenstoreServer

RSS_GROWTH_MB = 10.0
WARM_ROUNDS = 5


def daemon_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_mb": rss_kb / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task"))}


def run_all(host: SimHost, phase: str, domids: list[int], env: dict) -> list[str]:
    """*phase* for every domid at once; what went wrong, per NIC."""
    procs = {}
    for d in domids:
        e = host.env_for(d, script=our_command("vif-bridge")[-1], extra=env)
        procs[d] = subprocess.Popen(["ip", "netns", "exec", host.dom0, *our_command("vif-bridge"), phase,
                                     "type_if=vif"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, env=e, text=True)
    errors = []
    for d, p in procs.items():
        _out, err = p.communicate(timeout=60)
        if p.returncode != 0:
            errors.append(f"vif{d}.0 {phase}: exit {p.returncode}: {err.strip()[-200:]}")
    masters = {link["ifname"]: link.get("master") for link in host.links()}
    for d in domids:
        if phase == "online":
            if host.xs.read(f"/local/domain/0/backend/vif/{d}/0/hotplug-status") != "connected":
                errors.append(f"vif{d}.0 online: not connected")
            if masters.get(f"vif{d}.0") != "xenbr0":
                errors.append(f"vif{d}.0 online: not a port of xenbr0")
        else:
            host.xs.write(f"/local/domain/0/backend/vif/{d}/0/hotplug-status", "")
            if masters.get(f"vif{d}.0"):
                errors.append(f"vif{d}.0 offline: still a port")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10000, help="NIC online+offline cycles in all")
    parser.add_argument("--parallel", type=int, default=8, help="vifs going on/offline at once")
    parser.add_argument("--config", default="default", choices=sorted(CONFIGS))
    client_option(parser)
    args = parser.parse_args()
    use_client(args.client)
    if os.geteuid() != 0:
        print("soak: needs root (network namespaces)", file=sys.stderr)
        return 1
    rounds = max(WARM_ROUNDS + 1, args.cycles // args.parallel)
    workdir = tempfile.mkdtemp(prefix="xs-soak-")
    xs = XenstoreServer(os.path.join(workdir, "xs.sock")).start()
    failures: list[str] = []
    try:
        with SimHost(xs) as host:
            host.add_bridge("xenbr0", uplink=True)
            domids = add_cheap_guests(host, args.parallel)
            daemon = HotplugDaemon(os.path.join(host.workdir, "hpd", "hotplugd.sock")).start()
            env = {"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SYSLOG": "", **CONFIGS[args.config]}
            assert daemon.proc is not None
            try:
                started = time.monotonic()
                base: dict[str, float] = {}
                peak_rss = 0.0
                for n in range(rounds):
                    for phase in ("online", "offline"):
                        failures += run_all(host, phase, domids, env)
                    figures = daemon_figures(daemon.proc.pid)
                    peak_rss = max(peak_rss, figures["rss_mb"])
                    if n + 1 == WARM_ROUNDS:
                        base = figures
                    if (n + 1) % 100 == 0:
                        print(f"soak: {(n + 1) * args.parallel} cycles, {time.monotonic() - started:.0f} s, "
                              f"daemon rss {figures['rss_mb']:.1f} MB fds {figures['fds']:.0f} "
                              f"threads {figures['threads']:.0f}, failures {len(failures)}",
                              file=sys.stderr, flush=True)
                time.sleep(3)  # the libnftables contexts' idle reaper (2 s) runs
                end = daemon_figures(daemon.proc.pid)
                served = daemon.served()
            finally:
                daemon.stop()
            locks = os.listdir(host.lock_dir)
            records_dir = Path(host.workdir, "run", "firewall")
            records = sorted(p.name for p in records_dir.iterdir()) if records_dir.exists() else []
    finally:
        xs.stop()
    cycles = rounds * args.parallel
    growth = end["rss_mb"] - base["rss_mb"]
    print(f"soak ({args.config}): {cycles} cycles ({rounds} rounds of {args.parallel} vifs at once) in "
          f"{time.monotonic() - started:.0f} s; {served} requests served by hotplugd of {2 * cycles}; "
          f"{len(failures)} failures")
    print(f"  daemon after {WARM_ROUNDS} rounds: rss {base['rss_mb']:.1f} MB, fds {base['fds']:.0f}, "
          f"threads {base['threads']:.0f}")
    print(f"  daemon at the end:       rss {end['rss_mb']:.1f} MB (growth {growth:+.1f} MB, peak "
          f"{peak_rss:.1f}), fds {end['fds']:.0f}, threads {end['threads']:.0f}")
    print(f"  left behind: {len(locks)} lock files, {len(records)} firewall records")
    for line in failures[:10]:
        print(f"    {line}")
    ok = (not failures and growth < RSS_GROWTH_MB and end["fds"] <= base["fds"]
          and end["threads"] <= base["threads"] and not locks and not records and served == 2 * cycles)
    print("soak: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
