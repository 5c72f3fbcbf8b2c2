"""Side-by-side benchmark: ``vif-bridge online`` + ``offline``, upstream's script vs ours.

Run as root from the repository root (``make bench``)::

    .venv/bin/python bench/bench_vif_bridge.py [--reps 30] [--preplug 1000] [--daemon] [--json out.json]

Both implementations run on the same SimHost, against the same guest NIC,
alternating per repetition (and alternating which goes first), exactly as
libxl starts them: ``ip netns exec <dom0> <script> online type_if=vif`` with
libxl's environment and plain PATH.  Ours is started by path, so its
``#!/usr/bin/python3 -IS`` shebang applies (never the slow pyenv python).

Each number is the wall clock around one ``SimHost.run_hotplug`` call, which
includes ``ip netns exec``; the cost of ``ip netns exec <dom0> /bin/true`` is
measured the same way and also shown subtracted.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import REPO, our_command, upstream_command
from xensim.xenstored import XenstoreServer

DOMID = 1
PHASES = ("online", "offline")


class BenchError(RuntimeError):
    pass


# ------------------------------------------------------------------ measuring
def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def time_hotplug(host: SimHost, argv0: list[str], command: str, extra_env: dict | None = None) -> float:
    """Milliseconds for one run_hotplug call; raises if the script failed."""
    start = time.perf_counter()
    cp = host.run_hotplug(argv0, DOMID, command=command, extra_env=extra_env)
    elapsed = _ms(start)
    if cp.returncode != 0:
        raise BenchError(f"{' '.join(argv0)} {command} exited {cp.returncode}: {cp.stderr.strip()}")
    return elapsed


def measure_once(host: SimHost, argv0: list[str], extra_env: dict | None = None) -> dict[str, float]:
    """One online + offline cycle of the benchmark guest: {"online": ms, "offline": ms}."""
    return {phase: time_hotplug(host, argv0, phase, extra_env) for phase in PHASES}


def measure(host: SimHost, argv0: list[str], reps: int, extra_env: dict | None = None) -> dict[str, list[float]]:
    """*reps* online + offline cycles of one implementation: {"online": [ms…], "offline": [ms…]}."""
    out: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(reps):
        for phase, ms in measure_once(host, argv0, extra_env).items():
            out[phase].append(ms)
    return out


def time_netns_exec(host: SimHost) -> float:
    """Milliseconds for ``ip netns exec <dom0> /bin/true``, started like run_hotplug starts scripts."""
    env = host.env_for(DOMID)
    start = time.perf_counter()
    p = subprocess.Popen(["ip", "netns", "exec", host.dom0, "/bin/true"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    p.communicate(timeout=10)
    elapsed = _ms(start)
    if p.returncode != 0:
        raise BenchError("ip netns exec /bin/true failed")
    return elapsed


# ------------------------------------------------------------------ set-up
def preplug(host: SimHost, count: int, bridge: str = "xenbr0") -> None:
    """Put *count* extra up ports on *bridge*: veth pairs whose peers stay in dom0 (one ``ip -batch``).

    Each peer carries an IPv4 address, so the namespace holds *count* more addresses.
    """
    if count <= 0:
        return
    lines = []
    for i in range(count):
        lines += [f"link add bp{i}a type veth peer name bp{i}b",
                  f"link set bp{i}a master {bridge}",
                  f"link set bp{i}a up",
                  f"link set bp{i}b up",
                  # an address per port's peer (RFC 2544 benchmark range, never routed
                  # anywhere): per-vif cost must not grow with the namespace's addresses
                  f"addr add 198.18.{i // 256}.{i % 256}/32 dev bp{i}b"]
    # Without IPv6 on the extra ports: 2000 interfaces' IPv6 multicast (DAD, RS, MLD),
    # flooded by the bridge to 1000 ports, keeps both CPUs in softirq at ~99% and
    # would measure that storm instead of the scripts. Only dom0's namespace is touched.
    sysctl = "net.ipv6.conf.default.disable_ipv6"
    host.sh(host.dom0, "sysctl", "-qw", f"{sysctl}=1")
    try:
        cp = subprocess.run(["ip", "-n", host.dom0, "-batch", "-"], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, timeout=600, check=False)
    finally:
        host.sh(host.dom0, "sysctl", "-qw", f"{sysctl}=0")
    if cp.returncode != 0:
        raise BenchError(f"ip -batch failed: {cp.stderr.strip()[:500]}")
    ports = len(host.bridge_ports())
    if ports < count + 1:
        raise BenchError(f"only {ports} ports on {bridge} after pre-plugging {count}")


def implementations(daemon_socket: str | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv prefix, extra environment).  "ours" runs in-process (no daemon)."""
    impls = {
        "upstream": (upstream_command("vif-bridge"), {}),
        "ours": (our_command("vif-bridge", "python"), {"XENSCRIPTS_NO_DAEMON": "1"}),
    }
    if daemon_socket:
        impls["ours-daemon"] = (our_command("vif-bridge", "python"), {"XENSCRIPTS_SOCKET": daemon_socket})
        # installed where a C compiler is: the entry file started by xenscripts-launch
        impls["ours-launch-daemon"] = (our_command("vif-bridge", "launch"), {"XENSCRIPTS_SOCKET": daemon_socket})
        # the pip console script ($venv/bin/vif-bridge) takes the same path: hotplugd first
        impls["ours-console-daemon"] = ([str(REPO / ".venv" / "bin" / "vif-bridge")],
                                        {"XENSCRIPTS_SOCKET": daemon_socket})
    return impls


# ------------------------------------------------------------------ the run
def run_bench(reps: int, preplug_count: int, daemon: bool,
              progress: Callable[[str], None] = lambda s: None) -> dict:
    tmp = tempfile.mkdtemp(prefix="xs-bench-")
    xs = XenstoreServer(os.path.join(tmp, "xs.sock")).start()
    hotplugd = None
    try:
        if daemon:
            hotplugd = HotplugDaemon(os.path.join(tmp, "hotplugd.sock")).start()
        impls = implementations(hotplugd.socket if hotplugd else None)
        with SimHost(xs) as host:
            host.add_bridge("xenbr0", uplink=True)
            host.add_guest(DOMID)
            if preplug_count:
                progress(f"pre-plugging {preplug_count} ports on xenbr0 ...")
                start = time.perf_counter()
                preplug(host, preplug_count)
                progress(f"  done in {_ms(start) / 1000:.1f} s")
            timings: dict[str, dict[str, list[float]]] = {n: {p: [] for p in PHASES} for n in impls}
            baseline: list[float] = []
            names = list(impls)
            for name in names:  # warm-up: page cache, pyc files, the vif's first MAC change
                measure_once(host, impls[name][0], impls[name][1])
            for rep in range(reps):
                order = names if rep % 2 == 0 else names[::-1]
                baseline.append(time_netns_exec(host))
                for name in order:
                    argv0, env = impls[name]
                    for phase, ms in measure(host, argv0, 1, env).items():
                        timings[name][phase] += ms
                progress(f"rep {rep + 1}/{reps}")
            other_ports = len(host.bridge_ports())  # the bench vif is off the bridge now
        served = hotplugd.served() if hotplugd else 0
        if hotplugd and served < 2 * (reps + 1):
            raise BenchError(f"hotplugd served only {served} requests: ours-daemon fell back in-process")
        return {"reps": reps, "preplug": preplug_count, "other_bridge_ports": other_ports,
                "hotplugd_served": served,
                "baseline_netns_exec_ms": baseline, "timings_ms": timings,
                "python": "/usr/bin/python3 (shebang of bin/vif-bridge)",
                "kernel": platform.release(), "cpus": os.cpu_count()}
    finally:
        if hotplugd is not None:
            hotplugd.stop()
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def summarise(result: dict) -> dict:
    """Medians (ms), medians minus the netns-exec baseline, and ratios against upstream."""
    base = statistics.median(result["baseline_netns_exec_ms"])
    med = {n: {p: statistics.median(v) for p, v in t.items()} for n, t in result["timings_ms"].items()}
    net = {n: {p: max(v - base, 0.0) for p, v in t.items()} for n, t in med.items()}
    up = med["upstream"]
    up_net = net["upstream"]
    ratio = {n: {p: med[n][p] / up[p] for p in PHASES} for n in med if n != "upstream"}
    ratio_net = {n: {p: (net[n][p] / up_net[p]) if up_net[p] else float("nan") for p in PHASES}
                 for n in med if n != "upstream"}
    return {"baseline_median_ms": base, "median_ms": med, "median_minus_baseline_ms": net,
            "ratio_vs_upstream": ratio, "ratio_vs_upstream_minus_baseline": ratio_net}


def report(result: dict, summary: dict) -> str:
    lines = [(f"vif-bridge online + offline, {result['reps']} reps, "
              f"{result['other_bridge_ports']} other ports on xenbr0 "
              f"({result['preplug']} pre-plugged), {result['cpus']} CPUs"),
             f"baseline `ip netns exec dom0 /bin/true`: median {summary['baseline_median_ms']:.1f} ms",
             "",
             f"{'median ms':<28}{'online':>9}{'offline':>9}   {'minus baseline':>14}{'':>6}",
             f"{'':<28}{'':>9}{'':>9}   {'online':>10}{'offline':>10}"]
    for name, med in summary["median_ms"].items():
        net = summary["median_minus_baseline_ms"][name]
        lines.append(f"{name:<28}{med['online']:>9.1f}{med['offline']:>9.1f}   "
                     f"{net['online']:>10.1f}{net['offline']:>10.1f}")
    for name, r in summary["ratio_vs_upstream"].items():
        rn = summary["ratio_vs_upstream_minus_baseline"][name]
        lines.append(f"{'ratio ' + name + '/upstream':<28}{r['online']:>9.2f}{r['offline']:>9.2f}   "
                     f"{rn['online']:>10.2f}{rn['offline']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="measured repetitions per implementation (30)")
    ap.add_argument("--preplug", type=int, default=0, metavar="N",
                    help="first put N extra veth ports on xenbr0 (e.g. 1000)")
    ap.add_argument("--daemon", action="store_true",
                    help="also measure ours through a warm xenscripts-hotplugd")
    ap.add_argument("--json", metavar="FILE", help="write raw timings and the summary to FILE")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.reps < 1:
        ap.error("--reps must be >= 1")

    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        result = run_bench(args.reps, args.preplug, args.daemon, progress)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    summary = summarise(result)
    print(report(result, summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"result": result, "summary": summary}, f, indent=2)
        print(f"raw timings written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
