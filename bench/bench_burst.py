"""Boot storms: N guest NICs' ``vif-bridge online`` released at the same instant, then their ``offline``.

Run as root from the repository root::

    .venv/bin/python bench/bench_burst.py [--sizes 50,200,600,1000] [--reps 2]
        [--configs default,antispoof-nft,antispoof-legacy] [--client launch|python] [--alone N] [--json FILE]

As libxl starts many domains at once: every NIC's process is spawned first
(``ip netns exec <dom0> sh -c 'read _ </dev/fd/FD; exec "$@"' <script> online
type_if=vif`` with libxl's environment and argv), each blocks reading one
shared pipe, and closing the pipe's write end releases them all at once;
each is SIGKILLed 40 s after the release (``LIBXL_HOTPLUG_TIMEOUT``), as
libxl kills the script's pid. Then the same for ``offline``.

Debian's upstream script and ours (the entry file ``bin/vif-bridge``, started
by the compiled ``xenscripts-launch`` as installed with a C compiler, or with
``--client python`` by Python, forwarding to one hotplugd) run on the same simulated host and the same
vifs, alternating which goes first every repetition. Per wave: wall time
(release to the last exit), CPU (the scripts' processes and their children,
from ``wait4``, plus the daemon's), NICs lost (killed, a non-zero exit, no
``connected`` after online, still a bridge port after offline), the slowest
NIC and the median one; then ours / upstream ratios. With ``--alone N``, N of
the host's NICs then run ours one at a time (online, then offline): their CPU
per NIC alone, and the burst's per-NIC CPU as a multiple of it.

Cheap guests: 1000 guest namespaces would measure namespace creation, so
every vif's peer end lives in one shared "guests" namespace (up, with the
guest's MAC): the dom0 side, which is all the scripts touch, is the shape
netback gives. IPv6 is off in both namespaces (2000 links' multicast
flooded by the bridge would be the storm measured instead; see README).
The simulated xenstored runs in this process; its CPU is printed apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xensim.burst import KILL_AFTER, BurstError, add_cheap_guests, burst, process_cpu
from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import client_option, our_command, upstream_command, use_client
from xensim.ovs import OvsSwitch
from xensim.xenstored import XenstoreServer

CONFIGS = {
    "default": {},
    "antispoof-nft": {"firewall": "nft", "antispoof": "yes"},
    "antispoof-legacy": {"firewall": "legacy", "antispoof": "yes"},
    "none": {"firewall": "none"},
    "ovs": {},  # vif-openvswitch on a real ovsdb-server + ovs-vswitchd (xensim/ovs.py), ovsbr0.10
}
SCRIPTS = {"ovs": "vif-openvswitch"}  # else vif-bridge


@dataclass
class Wave:
    """One burst: who ran, what each NIC took, what was lost."""

    impl: str
    phase: str
    size: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    daemon_cpu_s: float = 0.0
    xenstored_cpu_s: float = 0.0
    lost: int = 0
    killed: int = 0
    failed: int = 0
    slowest_s: float = 0.0
    median_s: float = 0.0
    served: int = 0
    errors: list[str] = field(default_factory=list)




def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_wave(host: SimHost, impl: str, argv0: list[str], phase: str, domids: list[int], env_extra: dict,
             daemon: HotplugDaemon | None, outdir: str, switch: OvsSwitch | None = None) -> Wave:
    """One burst of *phase* for every domid, checked with ``ip -j``/xenstore afterwards."""
    if phase == "online":
        for d in domids:
            host.xs.write(f"/local/domain/0/backend/vif/{d}/0/hotplug-status", "")
    served0 = daemon.served() if daemon else 0
    dcpu0 = process_cpu(daemon.proc.pid) if daemon and daemon.proc else 0.0
    xcpu0 = self_cpu()
    wall, done = burst(host, argv0, phase, domids, env_extra, outdir)
    wave = Wave(impl, phase, len(domids), wall_s=wall, xenstored_cpu_s=self_cpu() - xcpu0)
    if daemon and daemon.proc:
        wave.daemon_cpu_s = process_cpu(daemon.proc.pid) - dcpu0
        wave.served = daemon.served() - served0
    wave.cpu_s = sum(c for _t, _s, c in done.values()) + wave.daemon_cpu_s
    masters = {link["ifname"]: link.get("master") for link in host.links()}
    if switch is not None:  # an OVS port has no kernel master: ask the switch
        masters = dict.fromkeys(switch.ports("ovsbr0"), "xenbr0")
    times = []
    for d in domids:
        t, status, _cpu = done[d]
        times.append(t)
        bad = None
        if os.WIFSIGNALED(status):
            wave.killed += 1
            bad = f"killed by signal {os.WTERMSIG(status)} after {t:.1f} s"
        elif os.WEXITSTATUS(status) != 0:
            bad = f"exit {os.WEXITSTATUS(status)}"
        elif phase == "online" and host.xs.read(f"/local/domain/0/backend/vif/{d}/0/hotplug-status") != "connected":
            bad = "no hotplug-status=connected"
        elif phase == "online" and masters.get(f"vif{d}.0") != "xenbr0":
            bad = "not a port of xenbr0"
        elif phase == "offline" and masters.get(f"vif{d}.0"):
            bad = "still a bridge port"
        if bad:
            wave.lost += 1
            if len(wave.errors) < 5:
                text = Path(outdir, f"{d}.out").read_text(errors="replace").strip().splitlines()
                wave.errors.append(f"vif{d}.0: {bad}: {' | '.join(text[-3:])[:300]}")
    wave.failed = wave.lost - wave.killed
    wave.slowest_s = max(times)
    wave.median_s = statistics.median(times)
    return wave


def alone_cpu(host: SimHost, argv0: list[str], phase: str, domids: list[int], env_extra: dict,
              daemon: HotplugDaemon, outdir: str) -> float:
    """CPU seconds per NIC (client and daemon) when each NIC's *phase* runs by itself, one after another."""
    dcpu0 = process_cpu(daemon.proc.pid) if daemon.proc else 0.0
    cpu = 0.0
    for d in domids:
        if phase == "online":
            host.xs.write(f"/local/domain/0/backend/vif/{d}/0/hotplug-status", "")
        _wall, done = burst(host, argv0, phase, [d], env_extra, outdir)
        _t, status, used = done[d]
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            raise BurstError(f"vif{d}.0 {phase} alone failed (wait status {status}): "
                             f"{Path(outdir, f'{d}.out').read_text(errors='replace').strip()[-300:]}")
        cpu += used
    daemon_cpu = (process_cpu(daemon.proc.pid) - dcpu0) if daemon.proc else 0.0
    return (cpu + daemon_cpu) / len(domids)


def run_config(xs: XenstoreServer, config: str, size: int, reps: int, progress,
               alone: int = 0) -> list[Wave]:
    """Upstream and ours alternating on one host of *size* cheap guests, *reps* times."""
    extra = CONFIGS[config]
    waves: list[Wave] = []
    with SimHost(xs) as host, contextlib.ExitStack() as stack:
        host.add_bridge("xenbr0", uplink=True)
        switch = stack.enter_context(OvsSwitch(host)) if config in SCRIPTS else None
        if switch is not None:
            switch.add_bridge("ovsbr0")
            extra = {**extra, **switch.env}
        script = SCRIPTS.get(config, "vif-bridge")
        start = time.monotonic()
        domids = add_cheap_guests(host, size, "ovsbr0.10" if switch else "xenbr0", script)
        progress(f"[{config} x{size}] {size} guests in {time.monotonic() - start:.1f} s")
        daemon = HotplugDaemon(os.path.join(host.workdir, "hpd", "hotplugd.sock")).start()
        outdir = tempfile.mkdtemp(prefix="xs-burst-", dir=host.workdir)
        try:
            impls = {"upstream": (upstream_command(script), switch.env if switch else {}, None),
                     "ours": (our_command(script), {"XENSCRIPTS_SOCKET": daemon.socket,
                                                    "XENSCRIPTS_SYSLOG": "", **extra}, daemon)}
            for rep in range(reps):
                order = list(impls) if rep % 2 == 0 else list(reversed(impls))
                for impl in order:
                    argv0, env, dmn = impls[impl]
                    for phase in ("online", "offline"):
                        wave = run_wave(host, impl, argv0, phase, domids, env, dmn, outdir, switch)
                        waves.append(wave)
                        progress(f"[{config} x{size} rep {rep + 1}] {impl:8s} {phase:7s} "
                                 f"wall {wave.wall_s:6.2f} s  cpu {wave.cpu_s:7.2f} s "
                                 f"(daemon {wave.daemon_cpu_s:6.2f}, xenstored {wave.xenstored_cpu_s:5.2f})  "
                                 f"lost {wave.lost} (killed {wave.killed})  slowest {wave.slowest_s:5.2f} s  "
                                 f"median {wave.median_s:5.2f} s" + (f"  served {wave.served}" if dmn else ""))
                        for err in wave.errors:
                            progress(f"    {err}")
            if alone:  # the same host, its other NICs unplugged: what one NIC costs by itself
                argv0, env, dmn = impls["ours"]
                for phase in ("online", "offline"):
                    per_nic = alone_cpu(host, argv0, phase, domids[:alone], env, dmn, outdir)
                    waves.append(Wave("ours-alone", phase, min(alone, size), cpu_s=per_nic * min(alone, size)))
                    progress(f"[{config} x{size}] ours     {phase:7s} alone (each of {min(alone, size)} NICs by "
                             f"itself): cpu/NIC {1000 * per_nic:5.1f} ms")
        finally:
            daemon.stop()
            log = Path(daemon.log_path).read_text(errors="replace")
            for word in ("refused", "crashed", "request failed", "dropped"):
                n = log.count(f"hotplugd: {word}")
                if n:
                    progress(f"[{config} x{size}] hotplugd log: {n} x '{word}'")
            shutil.copy(daemon.log_path, f"/tmp/bench-burst-{config}-{size}.hotplugd.log")
    return waves


def summarize(config: str, size: int, waves: list[Wave]) -> list[str]:
    lines = []
    for phase in ("online", "offline"):
        up = [w for w in waves if w.impl == "upstream" and w.phase == phase]
        us = [w for w in waves if w.impl == "ours" and w.phase == phase]
        up_wall, us_wall = statistics.median(w.wall_s for w in up), statistics.median(w.wall_s for w in us)
        up_cpu, us_cpu = statistics.median(w.cpu_s for w in up), statistics.median(w.cpu_s for w in us)
        lines.append(
            f"{config:16s} {size:5d} {phase:7s} | upstream {up_wall:6.2f} s {up_cpu:7.2f} cpu "
            f"lost {max(w.lost for w in up):4d} slowest {max(w.slowest_s for w in up):5.2f} | "
            f"ours {us_wall:6.2f} s {us_cpu:7.2f} cpu lost {max(w.lost for w in us):4d} "
            f"slowest {max(w.slowest_s for w in us):5.2f} | wall {us_wall / up_wall:5.2f}x "
            f"cpu {us_cpu / up_cpu:5.2f}x  cpu/NIC ours {1000 * us_cpu / size:5.1f} ms")
        alone = [w for w in waves if w.impl == "ours-alone" and w.phase == phase]
        if alone:
            per_nic = alone[0].cpu_s / alone[0].size
            lines.append(f"{'':16s} {'':5s} {phase:7s} | ours alone (each of {alone[0].size} NICs by itself): "
                         f"cpu/NIC {1000 * per_nic:5.1f} ms; in the burst {us_cpu / size / per_nic:4.2f}x that")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,600,1000")
    parser.add_argument("--reps", type=int, default=2, help="repetitions per size (alternating who goes first)")
    parser.add_argument("--configs", default="default,antispoof-nft,antispoof-legacy",
                        help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--alone", type=int, default=0, metavar="N",
                        help="also run N of each host's NICs one by one (ours): per-NIC CPU alone, beside the burst's")
    client_option(parser)
    parser.add_argument("--json", help="write every wave here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    use_client(args.client)
    if os.geteuid() != 0:
        print("bench_burst: needs root (network namespaces)", file=sys.stderr)
        return 1
    progress = (lambda _s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    workdir = tempfile.mkdtemp(prefix="xs-bench-")
    xs = XenstoreServer(os.path.join(workdir, "xs.sock")).start()
    summary, everything = [], []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for config in args.configs.split(","):
                waves = run_config(xs, config, size, args.reps, progress, args.alone)
                everything += [{"config": config, **w.__dict__} for w in waves]
                summary += summarize(config, size, waves)
    except BurstError as e:
        print(f"bench_burst: {e}", file=sys.stderr)
        return 1
    finally:
        xs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"vif-bridge (config ovs: vif-openvswitch) bursts, released at once, killed at {KILL_AFTER:g} s; "
          f"ours through hotplugd, entry files started by {args.client}; medians of {args.reps}; "
          f"ratio = ours / upstream; {os.cpu_count()} CPUs (measured under load when the machine is shared)")
    print("\n".join(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
