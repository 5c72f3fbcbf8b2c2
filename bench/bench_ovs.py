"""Side-by-side benchmark: ``vif-openvswitch online`` + ``offline``, Debian's script vs ours.

Run as root from the repository root (``make bench``)::

    .venv/bin/python bench/bench_ovs.py [--reps 20] [--json out.json]

One SimHost with a real ovsdb-server + ovs-vswitchd (xensim/ovs.py, userspace
datapath), one guest NIC on ``ovsbr0.10`` (a tagged port, the common case).
Upstream (bash, one ``ovs-vsctl`` per change), ours in-process and ours
through a warm hotplugd (its OVSDB connection kept open) alternate per
repetition, timed like bench_vif_bridge.py: wall clock around one
``SimHost.run_hotplug``, and minus ``ip netns exec dom0 /bin/true``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_vif_bridge import (
    PHASES,
    BenchError,
    measure,
    measure_once,
    report,
    summarise,
    time_netns_exec,
)
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command, upstream_command
from xensim.ovs import OvsSwitch, ovs_available
from xensim.xenstored import XenstoreServer

DOMID = 1


def run_bench(reps: int, progress=lambda s: None) -> dict:
    tmp = tempfile.mkdtemp(prefix="xs-bench-ovs-")
    xs = XenstoreServer(os.path.join(tmp, "xs.sock")).start()
    hotplugd = HotplugDaemon(os.path.join(tmp, "hotplugd.sock")).start()
    try:
        with SimHost(xs) as host, OvsSwitch(host) as switch:
            switch.add_bridge("ovsbr0")
            host.add_guest(DOMID, bridge="ovsbr0.10", script="/etc/xen/scripts/vif-openvswitch")
            impls = {
                "upstream": (upstream_command("vif-openvswitch"), {**switch.env}),
                "ours": (our_command("vif-openvswitch", "python"), {**switch.env, "XENSCRIPTS_NO_DAEMON": "1"}),
                "ours-daemon": (our_command("vif-openvswitch", "python"),
                                {**switch.env, "XENSCRIPTS_SOCKET": hotplugd.socket}),
                "ours-launch-daemon": (our_command("vif-openvswitch", "launch"),
                                       {**switch.env, "XENSCRIPTS_SOCKET": hotplugd.socket}),
            }
            for argv0, env in impls.values():  # warm-up: page cache, pyc files, hotplugd's OVSDB connection
                measure_once(host, argv0, env)
            timings: dict[str, dict[str, list[float]]] = {n: {p: [] for p in PHASES} for n in impls}
            baseline: list[float] = []
            names = list(impls)
            for rep in range(reps):
                baseline.append(time_netns_exec(host))
                for name in names if rep % 2 == 0 else names[::-1]:
                    argv0, env = impls[name]
                    for phase, ms in measure(host, argv0, 1, env).items():
                        timings[name][phase] += ms
                progress(f"rep {rep + 1}/{reps}")
            if switch.port("vif1.0") is not None:
                raise BenchError("the bench vif is still on the switch after offline")
        served = hotplugd.served()
        if served < 2 * (reps + 1):
            raise BenchError(f"hotplugd served only {served} requests: ours-daemon fell back in-process")
        return {"reps": reps, "preplug": 0, "other_bridge_ports": 0, "hotplugd_served": served,
                "baseline_netns_exec_ms": baseline, "timings_ms": timings, "cpus": os.cpu_count()}
    finally:
        hotplugd.stop()
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="measured repetitions per implementation (20)")
    ap.add_argument("--json", metavar="FILE", help="write raw timings and the summary to FILE")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    ok, why = ovs_available()
    if not ok:
        print(f"bench: {why}", file=sys.stderr)
        return 2
    try:
        result = run_bench(args.reps, (lambda s: None) if args.quiet else
                           (lambda s: print(s, file=sys.stderr, flush=True)))
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    summary = summarise(result)
    print(report(result, summary).replace("vif-bridge", "vif-openvswitch", 1)
          .replace("other ports on xenbr0 (0 pre-plugged)", "other ports on ovsbr0 (tagged port ovsbr0.10)"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"result": result, "summary": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
