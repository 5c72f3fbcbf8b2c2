"""Per-vif firewall cost: ``vif-bridge online``/``offline`` per backend and policy, with 0/100/1000 vifs present.

Run as root from the repository root::

    .venv/bin/python bench/bench_firewall.py [--reps 10] [--sizes 0,100,1000] [--json out.json]

For each backend (nft, legacy) a fresh SimHost is filled with the rules of
N other vifs (compat + antispoof, written in bulk with ``iptables-restore``
and ``nft -f``, the same rules our planner makes), then one guest NIC goes
online and offline with ``firewall=none`` (no rules: the baseline), compat
only, and ``antispoof=yes``; cold (in-process, every import paid) and warm
(through a hotplugd). The firewall's own cost is the difference to
``firewall=none``. Upstream's plain ``vif-bridge online`` (Debian's: no
iptables at all) is measured on the same host for the 0.4x target.
``--concurrent 64`` instead brings 64 vifs online at once per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xenscripts.firewall.model import nft_text
from xenscripts.firewall.nft import SCAFFOLDS
from xenscripts.firewall.plan import compat_rules, nft_vif_elements
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command, upstream_command
from xensim.xenstored import XenstoreServer

POLICIES = {"none": ("firewall=none",), "compat": (), "antispoof": ("antispoof=yes",)}
BACKENDS = ("nft", "legacy")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def prefill(host: SimHost, backend: str, start: int, count: int) -> None:
    """The rules of vifs fv<start>..fv<start+count-1> (compat + antispoof), in bulk."""
    if count <= 0:
        return
    mac = "00:16:3e:7f:00:01"
    vifs = [(f"fv{i}", (f"10.200.{i // 250}.{i % 250 + 1}",)) for i in range(start, start + count)]
    v4 = "".join(compat_rules("bridge", dev, ips).restore_text() for dev, ips in vifs)
    elements = [e for dev, ips in vifs for e in nft_vif_elements("bridge", dev, mac, ips)]
    if start == 0:  # antispoof is in our nft tables on both backends
        _run(host, ["nft", "-f", "-"], SCAFFOLDS["bridge"])
    _run(host, ["nft", "-f", "-"], nft_text("add", elements))
    _run(host, [f"iptables-{backend}-restore", "--noflush"], v4)


def _run(host: SimHost, cmd: list[str], text: str) -> None:
    if not text:
        return
    cp = subprocess.run(["ip", "netns", "exec", host.dom0, *cmd], input=text, capture_output=True, text=True,
                        timeout=600, check=False)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {cp.stderr[:400]}")


def cycle(host: SimHost, argv0: list[str], args: tuple[str, ...], env: dict) -> tuple[float, float]:
    """One online + offline of guest 1: milliseconds each."""
    out = []
    for command in ("online", "offline"):
        start = time.perf_counter()
        cp = host.run_hotplug(argv0, 1, command=command, extra_args=args, extra_env=env)
        out.append(_ms(start))
        if cp.returncode != 0:
            raise RuntimeError(f"{command} {' '.join(args)}: {cp.stderr.strip()}")
    return out[0], out[1]


def bench_backend(xs: XenstoreServer, backend: str, sizes: list[int], reps: int, daemon_sock: str,
                  progress) -> dict:
    modes = {"cold": {"XENSCRIPTS_NO_DAEMON": "1"}, "warm": {"XENSCRIPTS_SOCKET": daemon_sock}}
    results: dict = {}
    with SimHost(xs) as host:
        host.add_bridge("xenbr0", uplink=True)
        host.add_guest(1, ip=host.guest_ip(1))
        env_base = {"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": f"{host.workdir}/xtables.lock"}
        present = 0
        for size in sizes:
            prefill(host, backend, present, size - present)
            present = size
            for mode, menv in modes.items():
                env = {**env_base, **menv}
                for policy, extra in POLICIES.items():
                    args = (f"firewall={backend}", *extra) if policy != "none" else extra
                    cycle(host, our_command("vif-bridge"), args, env)  # warm-up
                    on, off = zip(*(cycle(host, our_command("vif-bridge"), args, env) for _ in range(reps)))
                    results[f"{size}/{mode}/{policy}"] = {"online": statistics.median(on),
                                                          "offline": statistics.median(off)}
                    progress(f"{backend} {size} vifs {mode} {policy}: online {statistics.median(on):.1f} ms")
            if size == sizes[0]:
                up = [cycle(host, upstream_command("vif-bridge"), (), env_base) for _ in range(reps)]
                results[f"{size}/upstream"] = {"online": statistics.median(u[0] for u in up),
                                               "offline": statistics.median(u[1] for u in up)}
    return results


def concurrent(xs: XenstoreServer, backend: str, count: int, daemon_sock: str) -> dict:
    """*count* vif-bridge online antispoof=yes at once, then offline: wall time and failures."""
    out = {}
    with SimHost(xs) as host:
        host.add_bridge("xenbr0", uplink=True)
        for d in range(1, count + 1):
            host.add_guest(d, ip=host.guest_ip(d))
        env = {"XENSCRIPTS_SYSLOG": "", "XENSCRIPTS_SOCKET": daemon_sock,
               "XTABLES_LOCKFILE": f"{host.workdir}/xtables.lock"}
        for command in ("online", "offline"):
            codes: list[int] = []

            def one(d: int, command: str = command, codes: list[int] = codes) -> None:
                codes.append(host.run_hotplug(our_command("vif-bridge"), d, command=command,
                                              extra_args=(f"firewall={backend}", "antispoof=yes"),
                                              extra_env=env).returncode)
            threads = [threading.Thread(target=one, args=(d,)) for d in range(1, count + 1)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[command] = {"wall_s": _ms(start) / 1000, "failed": sum(c != 0 for c in codes)}
            if command == "online":
                saved = host.sh(host.dom0, "iptables-nft-save" if backend == "nft" else "iptables-legacy-save").stdout
                out["chains"] = sum(f":xs-vif{d}.0 " in saved for d in range(1, count + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--sizes", default="0,100,1000", help="vifs already present (ascending)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--concurrent", type=int, metavar="N", help="instead: N vifs online at once per backend")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="xs-fwbench-")
    xs = XenstoreServer(os.path.join(tmp, "xs.sock")).start()
    daemon = HotplugDaemon(os.path.join(tmp, "hotplugd.sock")).start()
    results: dict = {}
    try:
        for backend in args.backends.split(","):
            if args.concurrent:
                results[backend] = concurrent(xs, backend, args.concurrent, daemon.socket)
                print(backend, json.dumps(results[backend]))
            else:
                sizes = [int(s) for s in args.sizes.split(",")]
                results[backend] = bench_backend(xs, backend, sizes, args.reps, daemon.socket,
                                                 lambda m: print(m, file=sys.stderr, flush=True))
                print(report(backend, results[backend], sizes))
    finally:
        daemon.stop()
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def report(backend: str, res: dict, sizes: list[int]) -> str:
    """A markdown table: medians, and the firewall's own cost (minus firewall=none)."""
    up = res[f"{sizes[0]}/upstream"]
    lines = [f"### {backend} (upstream plain online {up['online']:.1f} ms, offline {up['offline']:.1f} ms)", "",
             "| vifs present | mode | policy | online ms | offline ms | online − none | offline − none | online / upstream |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for mode in ("cold", "warm"):
            base = res[f"{size}/{mode}/none"]
            for policy in POLICIES:
                r = res[f"{size}/{mode}/{policy}"]
                lines.append(f"| {size} | {mode} | {policy} | {r['online']:.1f} | {r['offline']:.1f} | "
                             f"{r['online'] - base['online']:+.1f} | {r['offline'] - base['offline']:+.1f} | "
                             f"{r['online'] / up['online']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
