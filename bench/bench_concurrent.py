"""64 concurrent `vif-bridge online`, then 64 `offline` (libxl starting many domains).

For upstream's script, ours in-process (no daemon) and ours through a warm
hotplugd: wall time, failures, and CPU seconds (the scripts' processes plus
the daemon's own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xensim.burst import process_cpu
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command, upstream_command
from xensim.xenstored import XenstoreServer


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wave(host: SimHost, argv0: list[str], command: str, domids: list[int], env: dict, daemon) -> dict:
    """Run *command* for every domid at once; return wall time, failures and CPU."""
    cpu0 = children_cpu() + (process_cpu(daemon.proc.pid) if daemon else 0.0)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(domids)) as pool:
        results = list(pool.map(lambda d: host.run_hotplug(argv0, d, command=command, extra_env=env), domids))
    wall = time.perf_counter() - start
    cpu1 = children_cpu() + (process_cpu(daemon.proc.pid) if daemon else 0.0)
    failures = [r for r in results if r.returncode != 0]
    if command == "online":
        failures += [d for d in domids
                     if host.xs.read(f"/local/domain/0/backend/vif/{d}/0/hotplug-status") != "connected"]
    return {"wall_s": round(wall, 3), "failures": len(failures), "cpu_s": round(cpu1 - cpu0, 2)}


def run_mode(xs: XenstoreServer, mode: str, count: int) -> dict:
    with SimHost(xs) as host:
        host.add_bridge("xenbr0")
        domids = list(range(1, count + 1))
        for d in domids:
            host.add_guest(d)
        daemon = None
        env: dict = {}
        argv0 = upstream_command("vif-bridge") if mode == "upstream" else our_command("vif-bridge")
        if mode == "daemon":
            daemon = HotplugDaemon(os.path.join(host.workdir, "hpd", "hotplugd.sock")).start()
            env["XENSCRIPTS_SOCKET"] = daemon.socket
        try:
            result = {"online": wave(host, argv0, "online", domids, env, daemon),
                      "offline": wave(host, argv0, "offline", domids, env, daemon)}
            if daemon:
                result["daemon_requests"] = daemon.served()
            return result
        finally:
            if daemon:
                daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--modes", default="upstream,in-process,daemon")
    parser.add_argument("--json", help="write the results here")
    opts = parser.parse_args()
    sock = os.path.join(tempfile.mkdtemp(prefix="xs-bench-"), "xenstored.sock")
    xs = XenstoreServer(sock).start()
    results = {}
    try:
        for mode in opts.modes.split(","):
            results[mode] = run_mode(xs, mode, opts.count)
            r = results[mode]
            print(f"{mode:>10}: {opts.count} online  {r['online']['wall_s']:6.2f} s wall "
                  f"{r['online']['cpu_s']:6.2f} s CPU  {r['online']['failures']} failed | "
                  f"{opts.count} offline {r['offline']['wall_s']:6.2f} s wall "
                  f"{r['offline']['cpu_s']:6.2f} s CPU  {r['offline']['failures']} failed", flush=True)
    finally:
        xs.stop()
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
