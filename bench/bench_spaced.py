"""vif-bridge online/offline through hotplugd, spaced apart like real hotplug events, per firewall policy.

Run as root from the repository root::

    .venv/bin/python bench/bench_spaced.py [--reps 15] [--gap 0.2]

``bench_vif_bridge.py`` runs online and offline back to back. On an nft host
that measures a kernel effect as much as our code: a netlink socket closed
after a deletion (an offline's rules) waits an RCU grace period (8–25 ms
here), and the next online's ``iptables-nft-restore`` child pays it at its
exit. Real guests are not plugged 15 ms after the previous unplug, so this
bench waits ``--gap`` seconds before every timed call. Each repetition runs
upstream's script (Debian's, no rules), then ours with the default compat
rules, with ``antispoof=yes`` and with ``firewall=none``, all on one
simulated host, through one warm hotplugd. Medians; ratios to upstream.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import client_option, our_command, upstream_command, use_client
from xensim.xenstored import XenstoreServer

PHASES = ("online", "offline")


def implementations() -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv prefix, extra environment), ours all through the one hotplugd."""
    return {
        "upstream": (upstream_command("vif-bridge"), {}),
        "ours (compat)": (our_command("vif-bridge"), {}),
        "ours antispoof=yes": (our_command("vif-bridge"), {"antispoof": "yes"}),
        "ours firewall=none": (our_command("vif-bridge"), {"firewall": "none"}),
    }


def measure(reps: int, gap: float, warmup: int = 2) -> dict[str, dict[str, list[float]]]:
    """Wall times (ms) per implementation and phase, *gap* seconds of quiet before each call."""
    workdir = tempfile.mkdtemp(prefix="xs-bench-")
    xs = XenstoreServer(os.path.join(workdir, "xs.sock")).start()
    impls = implementations()
    times: dict[str, dict[str, list[float]]] = {name: {phase: [] for phase in PHASES} for name in impls}
    try:
        with SimHost(xs) as host, HotplugDaemon(os.path.join(workdir, "hotplugd.sock")) as daemon:
            host.add_bridge("xenbr0", uplink=True)
            host.add_guest(1)
            for rep in range(warmup + reps):
                for name, (argv0, extra) in impls.items():
                    env = {"XENSCRIPTS_SOCKET": daemon.socket, "XENSCRIPTS_SYSLOG": "", **extra}
                    for phase in PHASES:
                        time.sleep(gap)
                        start = time.perf_counter()
                        cp = host.run_hotplug(argv0, 1, command=phase, extra_env=env)
                        if cp.returncode != 0:
                            raise SystemExit(f"{name} {phase} failed: {cp.stderr}")
                        if rep >= warmup:
                            times[name][phase].append((time.perf_counter() - start) * 1000.0)
    finally:
        xs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds of quiet before each call")
    client_option(parser)
    args = parser.parse_args()
    use_client(args.client)
    if os.geteuid() != 0:
        print("bench_spaced: needs root (network namespaces)", file=sys.stderr)
        return 1
    times = measure(args.reps, args.gap)
    upstream = {phase: statistics.median(times["upstream"][phase]) for phase in PHASES}
    print(f"vif-bridge through hotplugd, entry files started by {args.client}, {args.reps} reps, {args.gap:g} s "
          "apart; ratio = ours / upstream")
    for name, phases in times.items():
        cells = []
        for phase in PHASES:
            median = statistics.median(phases[phase])
            cells.append(f"{phase} {median:6.1f} ms ({median / upstream[phase]:.2f}x)")
        print(f"{name:20s} " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
