"""xenscripts demo: our network-bridge builds xenbr0, our vif-bridge plugs two guests into it;
then a routed guest (vif-route) and a NAT guest (vif-nat, DHCP from dnsmasq) on a second host;
then guests on VLANs of an Open vSwitch bridge (vif-openvswitch) on a third;
last the warm path: the same online through a running hotplugd beside Debian's script, timed.

Run as root from the repository root: ``.venv/bin/python demo/demo.py``
(``make demo``).  Everything happens in throw-away network namespaces and a
private xenstored socket; the root namespace is never touched.  Exit status
0 only when every step worked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xensim.host import SimHost
from xensim.hotplugd import HotplugDaemon
from xensim.ours import our_command
from xensim.xenstored import XenstoreServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from bench_vif_bridge import DOMID, implementations, measure  # bench/ is not a package

GUESTS = (1, 2)
PICTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xen-network.svg")
PICTURE_ROUTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xen-network-routed.svg")
failures: list[str] = []


def check(ok: bool, what: str) -> bool:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)
    return ok


def hotplug(host: SimHost, domid: int, command: str) -> None:
    argv0 = our_command("vif-bridge")
    env = host.env_for(domid)
    shown = " ".join(f"{k}={env[k]}" for k in ("vif", "XENBUS_PATH"))
    print(f"$ {shown} ip netns exec dom0 {os.path.relpath(argv0[-1])} {command} type_if=vif")
    start = len(host.xs.writes)
    cp = host.run_hotplug(argv0, domid, command=command)
    writes = ", ".join(f"{p}={v}" for p, v in host.xs.writes[start:]) or "none"
    check(cp.returncode == 0, f"exit {cp.returncode}; xenstore writes: {writes}"
          + (f"  stderr: {cp.stderr.strip()}" if cp.stderr.strip() else ""))


def bridge_link(host: SimHost) -> None:
    cp = subprocess.run(["bridge", "-n", host.dom0, "link", "show"], capture_output=True, text=True,
                        check=False)
    print("$ bridge link")
    for line in cp.stdout.splitlines() or ["  (no ports)"]:
        print("  " + line.strip())


def show_vifs(host: SimHost) -> None:
    for domid in GUESTS:
        link = host.link(f"vif{domid}.0") or {}
        fe_mtu = host.xs.read(f"/local/domain/{domid}/device/vif/0/mtu")
        print(f"  vif{domid}.0: master={link.get('master')} mtu={link.get('mtu')} "
              f"mac={link.get('address')} state={link.get('operstate')}  frontend mtu={fe_mtu}")


def network_bridge(host: SimHost, command: str) -> None:
    """Our network-bridge builds xenbr0 from dom0's plain uplink eth0 (or takes it down again)."""
    argv = [*our_command("network-bridge"), command, "netdev=eth0", "bridge=xenbr0"]
    print(f"\n== network-bridge {command}\n$ ip netns exec dom0 {os.path.relpath(argv[0])} {' '.join(argv[1:])}")
    env = {"PATH": host.env_for(1)["PATH"], "XENSCRIPTS_LOG_FILE": host.log_file, "XENSCRIPTS_SYSLOG": "",
           "XENSCRIPTS_LOCK_DIR": host.lock_dir, "XENSCRIPTS_SOCKET": host.env_for(1)["XENSCRIPTS_SOCKET"]}
    cp = subprocess.run(["ip", "netns", "exec", host.dom0, *argv], capture_output=True, text=True, env=env,
                        check=False)
    owner = next((a["ifname"] for a in host.addrs() for i in a.get("addr_info", [])
                  if i.get("local") == host.dom0_ip), None)
    check(cp.returncode == 0 and owner == ("xenbr0" if command == "start" else "eth0") and host.ping(host.dom0, host.router_ip),
          f"exit {cp.returncode}; dom0 {host.dom0_ip} on {owner}, eth0 master={host.master_of('eth0')}, "
          "dom0 reaches the LAN router" + (f"  stderr: {cp.stderr.strip()}" if cp.stderr.strip() else ""))


def demo(xs: XenstoreServer) -> None:
    with SimHost(xs) as host:
        network_bridge(host, "start")
        for domid in GUESTS:
            host.add_guest(domid)
        print(f"Simulated host: dom0 netns {host.dom0}, xenbr0 holds uplink eth0 "
              f"({host.dom0_ip}), LAN router {host.router_ip}")
        print("Guests: " + ", ".join(f"dom{d} {host.guest_ip(d)} (vif{d}.0)" for d in GUESTS))

        print("\n== online (as libxl runs it: netns dom0, stdin /dev/null, libxl env)")
        for domid in GUESTS:
            hotplug(host, domid, "online")
        bridge_link(host)
        show_vifs(host)
        for domid in GUESTS:
            link = host.link(f"vif{domid}.0") or {}
            check(link.get("master") == "xenbr0" and link.get("address") == "fe:ff:ff:ff:ff:ff"
                  and xs.read(f"/local/domain/0/backend/vif/{domid}/0/hotplug-status") == "connected",
                  f"vif{domid}.0 on xenbr0 with the dummy MAC, hotplug-status connected")

        print("\n== traffic")
        g1 = host.guests[(1, 0)]
        check(host.ping(g1.ns, host.guest_ip(2), count=2, timeout=3), f"ping guest1 -> guest2 ({host.guest_ip(2)})")
        check(host.ping(g1.ns, host.router_ip, count=2, timeout=3), f"ping guest1 -> LAN router ({host.router_ip})")

        admin_view(host, PICTURE)

        print("\n== offline")
        for domid in GUESTS:
            hotplug(host, domid, "offline")
        bridge_link(host)
        ports = {p["ifname"] for p in host.bridge_ports()}
        check(ports == {"eth0"}, "vifs released: only the uplink is left on xenbr0")
        check(not any("UP" in (host.link(f"vif{d}.0") or {}).get("flags", ["UP"]) for d in GUESTS), "vifs are down")
        network_bridge(host, "stop")
        for guest in host.guests.values():  # libxl removes the backend after its offline
            xs.rm(guest.backend)


def demo_routed_nat(xs: XenstoreServer) -> None:
    """A routed guest (vif-route + network-route) and a NAT guest (vif-nat + network-nat, dnsmasq)."""
    from xensim.routed import configure_nat_guest, dhcp_lease, masquerade_rules, run_network, state_dir

    with SimHost(xs) as host:
        print(f"\nSimulated host 2: no bridge, dom0's uplink eth0 keeps {host.dom0_ip}")
        routed = host.add_guest(3, bridge=None, script="/etc/xen/scripts/vif-route", ip=host.guest_ip(3))
        nat = host.add_guest(4, bridge=None, script="/etc/xen/scripts/vif-nat", guest_addr="")
        env = {"XENSCRIPTS_STATE_DIR": state_dir(host), "dhcp": "yes"}
        try:
            for argv in (["network-route", "start"], ["network-nat", "start", "dhcp=yes"]):
                print("$ ip netns exec dom0 " + " ".join(argv))
                cp = run_network(host, *argv)
                check(cp.returncode == 0, f"exit {cp.returncode} {cp.stderr.strip()}")
            for guest, script in ((routed, "vif-route"), (nat, "vif-nat")):
                print(f"$ ip netns exec dom0 {script} online type_if=vif   (vif{guest.domid}.0)")
                cp = host.run_hotplug(our_command(script), guest.domid, extra_env=env)
                check(cp.returncode == 0, f"exit {cp.returncode} {cp.stderr.strip()}")
            for r in host.routes():
                if r.get("dev", "").startswith("vif"):
                    print(f"  route {r['dst']} dev {r['dev']} src {r.get('prefsrc')} metric {r.get('metric', 0)}")
            check(host.ping(routed.ns, host.router_ip, count=2, timeout=3),
                  f"routed guest {host.guest_ip(3)} -> LAN router through dom0")
            lease = dhcp_lease(host, nat.ns, nat.guest_if)
            check(lease is not None and lease["ip"] == "10.0.4.1", f"NAT guest's DHCP lease from dnsmasq: {lease}")
            if lease:
                configure_nat_guest(host, nat, lease["ip"], lease["router"])
                check(host.ping(nat.ns, lease["router"], count=2, timeout=3), f"NAT guest -> its router {lease['router']}")
                if masquerade_rules(host):
                    check(host.ping(nat.ns, host.router_ip, count=2, timeout=3), "NAT guest -> LAN router, masqueraded")
            admin_view(host, PICTURE_ROUTED)
        finally:
            for guest, script in ((routed, "vif-route"), (nat, "vif-nat")):
                host.run_hotplug(our_command(script), guest.domid, command="offline", extra_env=env)
            for name in ("network-nat", "network-route"):
                check(run_network(host, name, "stop").returncode == 0, f"{name} stop")


def demo_ovs(xs: XenstoreServer) -> None:
    """Guests on an Open vSwitch bridge (a real ovsdb-server + ovs-vswitchd): VLAN 10 twice, VLAN 20 once."""
    from xensim.ovs import OvsSwitch, ovs_available

    ok, why = ovs_available()
    if not ok:
        print(f"\n(Open vSwitch part skipped: {why})")
        return
    with SimHost(xs) as host, OvsSwitch(host) as switch:
        switch.add_bridge("ovsbr0")
        print(f"\nSimulated host 3: Open vSwitch bridge ovsbr0 (its own ovsdb-server, ovs-vswitchd in {host.dom0})")
        guests = {5: ("ovsbr0.10", {}), 6: ("ovsbr0", {"vlan": "10"}), 7: ("ovsbr0.20", {})}
        for domid, (bridge, keys) in guests.items():
            host.add_guest(domid, bridge=bridge, script="/etc/xen/scripts/vif-openvswitch", extra_backend=keys)
        try:
            for domid, (bridge, keys) in guests.items():
                print(f"$ ip netns exec dom0 vif-openvswitch online type_if=vif   (vif{domid}.0: bridge={bridge}"
                      + "".join(f", {k}={v}" for k, v in keys.items()) + ")")
                cp = host.run_hotplug(our_command("vif-openvswitch"), domid, extra_env=switch.env)
                check(cp.returncode == 0, f"exit {cp.returncode} {cp.stderr.strip()}")
            print("$ ovs-vsctl --columns=name,tag,trunks,vlan_mode list port")
            for domid in guests:
                port = switch.port(f"vif{domid}.0") or {}
                print(f"  vif{domid}.0: tag={port.get('tag')} trunks={port.get('trunks')} vlan_mode={port.get('vlan_mode')}")
            check(host.ping(host.guests[(5, 0)].ns, host.guest_ip(6), count=2, timeout=3),
                  "dom5 (ovsbr0.10) -> dom6 (vlan=10): same VLAN")
            check(not host.ping(host.guests[(5, 0)].ns, host.guest_ip(7), count=1, timeout=1),
                  "dom5 (VLAN 10) cannot reach dom7 (VLAN 20)")
        finally:
            for domid in guests:
                host.run_hotplug(our_command("vif-openvswitch"), domid, command="offline", extra_env=switch.env)
        check(switch.ports("ovsbr0") == [], "offline took every port off ovsbr0")


def admin_view(host: SimHost, picture: str) -> None:
    """What an admin sees: ``xenscripts status`` in dom0, and the picture ``xenscripts show`` draws."""
    env = {"PATH": host.env_for(1)["PATH"], "XENSTORED_PATH": host.xs.path,
           "XENSCRIPTS_SOCKET": host.env_for(1)["XENSCRIPTS_SOCKET"],
           "XENSCRIPTS_STATE_DIR": os.path.join(host.workdir, "run")}
    for args in (["status"], ["show", "-o", picture]):
        print(f"\n$ ip netns exec dom0 xenscripts {' '.join(args)}")
        cp = subprocess.run(["ip", "netns", "exec", host.dom0, sys.executable, "-m", "xenscripts.admin.main",
                             *args], capture_output=True, text=True, env=env, check=False,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        print("\n".join("  " + line for line in (cp.stdout + cp.stderr).splitlines()))
        check(cp.returncode == 0, f"xenscripts {args[0]} exit {cp.returncode}")
    svg = Path(picture).read_text() if os.path.exists(picture) else ""
    vifs = [g.vifname or g.vif for g in host.guests.values()]
    check(all(f">{v}<" in svg for v in vifs), f"the picture names every vif: {os.path.relpath(picture)}")


def demo_warm_path(xs: XenstoreServer, reps: int = 5) -> None:
    """One guest's online and offline, Debian's bash beside ours in-process and through a warm hotplugd."""
    print("\n== the warm path: one vif-bridge online/offline, median of", reps, "runs each (not a benchmark: "
          "make bench measures properly)")
    tmp = tempfile.mkdtemp(prefix="xs-demo-warm-")
    daemon = HotplugDaemon(os.path.join(tmp, "hotplugd.sock")).start()
    try:
        with SimHost(xs) as host:
            host.add_bridge("xenbr0", uplink=True)
            host.add_guest(DOMID)
            medians: dict[str, dict[str, float]] = {}
            for name, (argv0, env) in implementations(daemon.socket).items():
                if name == "ours-console-daemon":
                    continue
                measure(host, argv0, 1, env)  # warm-up: page cache, the daemon's first request
                runs = measure(host, argv0, reps, env)
                medians[name] = {phase: sorted(ms)[len(ms) // 2] for phase, ms in runs.items()}
            up = medians["upstream"]
            for name, label in (("upstream", "Debian's vif-bridge (bash)"), ("ours", "ours, in-process"),
                                ("ours-daemon", "ours, hotplugd, Python client"),
                                ("ours-launch-daemon", "ours, hotplugd, launcher")):
                m = medians[name]
                print(f"  {label:<31} online {m['online']:6.1f} ms ({m['online'] / up['online']:.2f}x)   "
                      f"offline {m['offline']:6.1f} ms ({m['offline'] / up['offline']:.2f}x)")
            print("  (launcher: the compiled xenscripts-launch that `xenscripts install` names on the entry files' "
                  "#! line where a C compiler is; without one, Python starts them)")
            check(daemon.served() >= 2 * (reps + 1), f"hotplugd served the warm runs ({daemon.served()} requests)")
            host.xs.rm(host.guests[(DOMID, 0)].backend)
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("demo: needs root (network namespaces)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="xs-demo-")
    xs = XenstoreServer(os.path.join(tmp, "xs.sock")).start()
    try:
        demo(xs)
        demo_routed_nat(xs)
        demo_ovs(xs)
        demo_warm_path(xs)
    except Exception as e:  # noqa: BLE001 - report any failure, then clean up
        failures.append(f"{type(e).__name__}: {e}")
        print(f"demo: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nTorn down: namespaces, xenstored and temp files removed.")
    if failures:
        print(f"DEMO FAILED ({len(failures)}): " + "; ".join(failures))
        return 1
    print("DEMO OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
