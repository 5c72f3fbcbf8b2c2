"""Routed and NAT set-ups on a SimHost: dom0's uplink eth0 keeps its address (no bridge).

``add_ipv6_uplink(host)`` gives lan0/eth0 IPv6 addresses beside the IPv4 ones
(``fd00:<k>::1`` the router, ``fd00:<k>::2`` dom0, default route via the router);
``routed_guest_ipv6(host, guest)`` gives a guest a /128 with dom0 as its gateway.
``run_network`` starts our network-* scripts in dom0 with a per-host state
directory (``state_dir``); ``configure_nat_guest`` applies a (static or DHCP)
lease in the guest. Independent observers: ``sysctl``, ``proxy_neighbours``,
``masquerade_rules`` (nft and legacy), ``udp_source_seen_by_lan`` (the source
address the LAN receives), ``dhcp_lease`` (busybox udhcpc in a namespace),
and a real ISC dhcpd behind a test restart script (``isc_dhcpd_env``).
"""

from __future__ import annotations

import json

from xensim.host import Guest, SimHost


def router_ip6(host: SimHost) -> str:
    return f"fd00:{host.k}::1"


def dom0_ip6(host: SimHost) -> str:
    return f"fd00:{host.k}::2"


def guest_ip6(host: SimHost, domid: int) -> str:
    return f"fd00:{host.k}::{10 + domid}"


def add_ipv6_uplink(host: SimHost) -> None:
    """IPv6 on the plain uplink (no DAD, so the addresses are usable at once)."""
    host.ip(host.lan, "addr", "add", f"{router_ip6(host)}/64", "dev", "lan0", "nodad")
    host.ip(host.dom0, "addr", "add", f"{dom0_ip6(host)}/64", "dev", "eth0", "nodad")
    host.ip(host.dom0, "-6", "route", "add", "default", "via", router_ip6(host))


def routed_guest_ipv6(host: SimHost, guest: Guest) -> str:
    """The guest's own IPv6 /128, reaching everything through dom0's address on its vif."""
    address = guest_ip6(host, guest.domid)
    host.ip(guest.ns, "addr", "add", f"{address}/128", "dev", guest.guest_if, "nodad")
    host.ip(guest.ns, "-6", "route", "add", dom0_ip6(host), "dev", guest.guest_if)
    host.ip(guest.ns, "-6", "route", "add", "default", "via", dom0_ip6(host))
    return address


def sysctl(host: SimHost, key: str, ns: str | None = None) -> str:
    """``sysctl -n`` inside a namespace (the independent observer)."""
    return host.sh(ns or host.dom0, "sysctl", "-n", key).stdout.strip()


def proxy_neighbours(host: SimHost) -> list[dict]:
    return json.loads(host.ip(host.dom0, "-j", "-6", "neigh", "show", "proxy").stdout or "[]")


def state_dir(host: SimHost) -> str:
    """This host's /run/xenscripts: private (0700) as hotplugd makes it; the work dir stands in for /run."""
    import os

    path = os.path.join(host.workdir, "run")
    os.chmod(host.workdir, 0o755)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    return path


def run_network(host: SimHost, name: str, *args: str, extra_env: dict | None = None):
    """Run our network script *name* in dom0, as an init script would."""
    import os
    import subprocess

    from xensim.host import LIBXL_PATH
    from xensim.ours import our_command

    env = {"PATH": LIBXL_PATH, "XENSCRIPTS_LOG_FILE": host.log_file, "XENSCRIPTS_LOCK_DIR": host.lock_dir,
           "XENSCRIPTS_STATE_DIR": state_dir(host),
           "XENSCRIPTS_SOCKET": os.environ.get("XENSCRIPTS_SOCKET", f"{host.workdir}/no-hotplugd.sock"),
           **(extra_env or {})}
    return subprocess.run(["ip", "netns", "exec", host.dom0, *our_command(name), *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=40, check=False)


def nat_guest_address(domid: int, devid: int = 0) -> tuple[str, str]:
    """(guest, router) for upstream's default NAT scheme, small domids and handles."""
    return f"10.0.{domid}.{devid + 1}", f"10.0.{domid}.{devid + 128}"


def configure_nat_guest(host: SimHost, guest: Guest, address: str, router: str, prefixlen: int = 16) -> None:
    """What the guest's own network set-up does with its (static or DHCP) lease."""
    host.ip(guest.ns, "addr", "add", f"{address}/{prefixlen}", "dev", guest.guest_if)
    host.ip(guest.ns, "route", "replace", "default", "via", router, "dev", guest.guest_if)


def masquerade_rules(host: SimHost, netdev: str = "eth0") -> int:
    """MASQUERADE rules for traffic leaving *netdev* in dom0, from ``nft -j`` and ``iptables-legacy-save``.

    An nft rule counts once per way it matches *netdev*: ``oifname "eth0"``
    directly, or once per ``eth0`` element of the set it looks up.
    """
    import re

    ruleset = json.loads(host.sh(host.dom0, "nft", "-j", "list", "ruleset", check=False).stdout or "{}")
    items = ruleset.get("nftables", [])
    sets = {(i["set"]["family"], i["set"]["table"], i["set"]["name"]): i["set"].get("elem", [])
            for i in items if "set" in i}
    count = 0
    for rule in (i["rule"] for i in items if "rule" in i):
        exprs = rule.get("expr", [])
        if not any("masquerade" in e for e in exprs):
            continue
        for e in exprs:
            match = e.get("match", {})
            if match.get("left", {}).get("meta", {}).get("key") != "oifname":
                continue
            right = match.get("right")
            if right == netdev:
                count += 1
            elif isinstance(right, str) and right.startswith("@"):
                count += sets.get((rule["family"], rule["table"], right[1:]), []).count(netdev)
    legacy = host.sh(host.dom0, "iptables-legacy-save", "-t", "nat", check=False).stdout
    count += len(re.findall(rf"^-A POSTROUTING .*-o {re.escape(netdev)} .*-j MASQUERADE", legacy, re.MULTILINE))
    return count


def udp_source_seen_by_lan(host: SimHost, sender_ns: str, port: int = 5599, timeout: float = 5.0,
                           source: str = "") -> str | None:
    """Send UDP from *sender_ns* (from *source*, if given) to the LAN router; the source the LAN saw, or None."""
    import subprocess

    receiver = ("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                f"s.bind(('{host.router_ip}',{port}))\ns.settimeout({timeout})\n"
                "print(s.recvfrom(64)[1][0])")
    listener = subprocess.Popen(
        ["ip", "netns", "exec", host.lan, "python3", "-c", receiver],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sender = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              f"s.bind(('{source}',0))\n"
              f"for _ in range({int(timeout * 10)}):\n"
              f"    s.sendto(b'x',('{host.router_ip}',{port})); time.sleep(0.1)\n")
    sending = subprocess.Popen(["ip", "netns", "exec", sender_ns, "python3", "-c", sender],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = listener.communicate(timeout=timeout + 5)
    finally:
        sending.kill()
        sending.wait()
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    return out.strip() or None


def dhcp_lease(host: SimHost, ns: str, ifname: str, tries: int = 5) -> dict | None:
    """Ask for a lease with busybox's udhcpc in *ns*; its answer (ip, subnet, router, hostname) or None.

    The udhcpc script only records the answer in the host's work directory:
    nothing of the namespace (let alone the root one) is configured by it.
    """
    import os
    import subprocess
    import tempfile

    workdir = tempfile.mkdtemp(dir=host.workdir, prefix="udhcpc-")
    out = os.path.join(workdir, "lease")
    script = os.path.join(workdir, "script")
    with open(script, "w", encoding="ascii") as f:
        f.write(f'#!/bin/sh\n[ "$1" = bound ] && echo "$ip $subnet $router $hostname" > {out}\nexit 0\n')
    os.chmod(script, 0o755)
    subprocess.run(["ip", "netns", "exec", ns, "udhcpc", "-i", ifname, "-f", "-q", "-n", "-t", str(tries),
                    "-T", "1", "-A", "1", "-s", script, "-x", "hostname:probe"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=tries * 3 + 10, check=False)
    if not os.path.exists(out):
        return None
    with open(out, encoding="ascii") as f:
        fields = f.read().split() + ["", "", "", ""]
    return {"ip": fields[0], "subnet": fields[1], "router": fields[2], "hostname": fields[3]}


# A stand-in for ``/etc/init.d/isc-dhcp-server restart``: a real dhcpd in the caller's
# namespace, with this test's config, lease, pid and interfaces (from the args file).
_DHCPD_RESTART = """#!/bin/sh
pid=$(cat {pid} 2>/dev/null)
if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
fi
rm -f {pid}
INTERFACESv4=
. {args}
exec /usr/sbin/dhcpd -4 -q -cf {conf} -lf {leases} -pf {pid} $INTERFACESv4
"""


def isc_dhcpd_env(host: SimHost) -> dict[str, str]:
    """Test files for ``dhcp=isc``: a symlinked dhcpd.conf, an args file, the restart script."""
    import os

    base = os.path.join(host.workdir, "isc")
    os.makedirs(os.path.join(base, "etc"), exist_ok=True)
    paths = {name: os.path.join(base, name) for name in ("dhcpd.conf", "args", "leases", "pid", "restart")}
    with open(os.path.join(base, "etc", "dhcpd.conf"), "w", encoding="ascii") as f:
        f.write("# test dhcpd.conf\nddns-update-style none;\n"
                "host dom10 { hardware ethernet 00:16:3e:00:0a:00; fixed-address 10.0.10.1; }\n")
    os.symlink(os.path.join(base, "etc", "dhcpd.conf"), paths["dhcpd.conf"])
    with open(paths["args"], "w", encoding="ascii") as f:
        f.write('INTERFACESv4=""\nINTERFACESv6=""\n')
    open(paths["leases"], "w").close()
    with open(paths["restart"], "w", encoding="ascii") as f:
        f.write(_DHCPD_RESTART.format(pid=paths["pid"], args=paths["args"], conf=paths["dhcpd.conf"],
                                      leases=paths["leases"]))
    os.chmod(paths["restart"], 0o755)
    return {"XENSCRIPTS_DHCPD_CONF": paths["dhcpd.conf"], "XENSCRIPTS_DHCPD_ARGS": paths["args"],
            "XENSCRIPTS_DHCPD_RESTART": paths["restart"]}


def stop_isc_dhcpd(host: SimHost) -> None:
    """Kill the test's dhcpd, if one runs."""
    import os
    import signal

    try:
        with open(os.path.join(host.workdir, "isc", "pid"), encoding="ascii") as f:
            os.kill(int(f.read()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
