"""The firewall on a simulated Xen host, proven with real packets, on both backends.

Every test runs once with ``firewall=nft`` and once with ``firewall=legacy``.
Forged packets are made in the guest's namespace (``ip addr``/``ip link``
changes, raw-socket ARP and router advertisements); results are read from
the victims' neighbour and route tables, pings, ``nft list ruleset``,
``iptables-save`` and ``conntrack -L`` — never from our code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest

from xensim.host import SimHost
from xensim.ours import REPO, our_command
from xensim.poll import wait_until

BACKENDS = ["nft", "legacy"]
PY = "/usr/bin/python3"
FORGED_MAC = "00:16:3e:66:66:66"

# ARP request and reply from the guest's own MAC, claiming someone else's IPv4 address.
ARP_FORGERY = r"""
import socket, struct, sys
ifname, mac, sender_ip, target_ip = sys.argv[1:5]
own = bytes.fromhex(mac.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(3):
    for op in (1, 2):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, own, socket.inet_aton(sender_ip),
                          b"\0" * 6, socket.inet_aton(target_ip))
        s.send(b"\xff" * 6 + own + b"\x08\x06" + arp)
"""
# A router advertisement for 2001:db8:99::/64 from the guest's link-local address.
RA_FORGERY = r"""
import socket, struct, sys
ifname = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
prefix = struct.pack("!BBBBIII16s", 3, 4, 64, 0xC0, 86400, 14400, 0,
                     socket.inet_pton(socket.AF_INET6, "2001:db8:99::"))
for _ in range(3):
    s.sendto(ra + prefix, ("ff02::1", 0, 0, socket.if_nametoindex(ifname)))
"""


# ------------------------------------------------------------------ helpers
def vif_bridge(host: SimHost, domid: int, command: str = "online", *args: str, **env: str):
    cp = host.run_hotplug(our_command("vif-bridge"), domid, command=command, extra_args=args,
                          extra_env={"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": lock_file(host), **env})
    assert cp.returncode == 0, f"vif-bridge {command} vif{domid}.0 {' '.join(args)}: {cp.stderr}"
    return cp


def lock_file(host: SimHost) -> str:
    return f"{host.workdir}/xtables.lock"


def reaches(host: SimHost, ns: str, ip: str, within: float = 6.0) -> bool:
    return wait_until(lambda: host.ping(ns, ip, timeout=1), timeout=within, interval=0)


def flush_neighbours(host: SimHost, *namespaces: str) -> None:
    for ns in namespaces:
        host.ip(ns, "neigh", "flush", "all")


def neighbour_mac(host: SimHost, ns: str, ip: str) -> str | None:
    out = host.ip(ns, "-j", "neigh", "show", "to", ip).stdout
    for entry in json.loads(out or "[]"):
        if entry.get("lladdr"):
            return entry["lladdr"]
    return None


def has_usable_link_local(host: SimHost, ns: str) -> bool:
    out = host.ip(ns, "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
    return "inet6" in out and "tentative" not in out


def has_v6_default(host: SimHost, ns: str) -> bool:
    return bool(host.ip(ns, "-6", "route", "show", "default").stdout.strip())


def forgeries(host: SimHost, g1, g2) -> dict[str, bool]:
    """Which of g1's forgeries reach g2 ("guest"), dom0 or the LAN; g1 is restored afterwards."""
    got: dict[str, bool] = {}
    quick = 1.5
    # forged source address
    host.ip(g1.ns, "addr", "flush", "dev", "eth0", "scope", "global")
    host.ip(g1.ns, "addr", "add", f"10.{host.k}.0.99/24", "dev", "eth0")
    got["ip→guest"] = reaches(host, g1.ns, g2.ip, quick)
    got["ip→dom0"] = reaches(host, g1.ns, host.dom0_ip, quick)
    got["ip→lan"] = reaches(host, g1.ns, host.router_ip, quick)
    host.ip(g1.ns, "addr", "flush", "dev", "eth0", "scope", "global")
    host.ip(g1.ns, "addr", "add", f"{g1.ip}/24", "dev", "eth0")
    host.ip(g1.ns, "route", "replace", "default", "via", host.router_ip)
    # forged MAC
    flush_neighbours(host, g1.ns, g2.ns, host.dom0)
    host.ip(g1.ns, "link", "set", "eth0", "address", FORGED_MAC)
    got["mac→guest"] = reaches(host, g1.ns, g2.ip, quick)
    got["mac→dom0"] = reaches(host, g1.ns, host.dom0_ip, quick)
    host.ip(g1.ns, "link", "set", "eth0", "address", g1.mac)
    # forged ARP: g1 claims the router's address to g2 and g2's address to dom0
    flush_neighbours(host, g2.ns, host.dom0)
    host.sh(g1.ns, PY, "-c", ARP_FORGERY, "eth0", g1.mac, host.router_ip, g2.ip)
    host.sh(g1.ns, PY, "-c", ARP_FORGERY, "eth0", g1.mac, g2.ip, host.dom0_ip)
    got["arp→guest"] = wait_until(lambda: neighbour_mac(host, g2.ns, host.router_ip) == g1.mac, 1)
    got["arp→dom0"] = wait_until(lambda: neighbour_mac(host, host.dom0, g2.ip) == g1.mac, 1)
    # forged router advertisement (from the link-local address, once it is usable again after the MAC change)
    assert wait_until(lambda: has_usable_link_local(host, g1.ns), 5)
    host.sh(g1.ns, PY, "-c", RA_FORGERY, "eth0")
    got["ra→guest"] = wait_until(lambda: has_v6_default(host, g2.ns), 1.5)
    got["ra→dom0"] = wait_until(lambda: has_v6_default(host, host.dom0), 0.5)
    for ns in (g2.ns, host.dom0):  # forget what a forgery taught
        host.ip(ns, "-6", "route", "flush", "proto", "ra", check=False)
    flush_neighbours(host, g1.ns, g2.ns, host.dom0)
    return got


def own_traffic_works(host: SimHost, g1, g2) -> None:
    assert reaches(host, g1.ns, g2.ip)
    assert reaches(host, g1.ns, host.dom0_ip)
    assert reaches(host, g1.ns, host.router_ip)
    assert reaches(host, g2.ns, g1.ip)


_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+|pcnt=\d+ -- bcnt=\d+|^#.*$", re.MULTILINE)


def ruleset(host: SimHost) -> str:
    """Every firewall rule of dom0, from the tools themselves, counters and comments dropped."""
    parts = [host.sh(host.dom0, cmd, check=False).stdout for cmd in (
        "nft list ruleset", "iptables-legacy-save", "ip6tables-legacy-save")]
    return _COUNTERS.sub("", "\n".join(parts))


def lines_naming(text: str, *words: str) -> list[str]:
    return [line for line in text.splitlines() if any(w in line for w in words)]


@pytest.fixture
def two_guests(simhost):
    g1 = simhost.add_guest(1, ip=simhost.guest_ip(1))
    g2 = simhost.add_guest(2, ip=simhost.guest_ip(2))
    return simhost, g1, g2


# ------------------------------------------------------------------ antispoof with real packets
@pytest.mark.parametrize("backend", BACKENDS)
def test_antispoof_stops_forgeries_that_otherwise_get_through(two_guests, backend):
    host, g1, g2 = two_guests
    # control: compat only, every forgery gets through (so the assertions below can fail)
    for d in (1, 2):
        vif_bridge(host, d, "online", f"firewall={backend}", "antispoof=no")
    own_traffic_works(host, g1, g2)
    control = forgeries(host, g1, g2)
    assert all(control.values()), control
    for d in (1, 2):
        vif_bridge(host, d, "offline", f"firewall={backend}")
    # antispoof: own traffic only
    for d in (1, 2):
        vif_bridge(host, d, "online", f"firewall={backend}", "antispoof=yes")
    own_traffic_works(host, g1, g2)
    blocked = forgeries(host, g1, g2)
    assert not any(blocked.values()), blocked
    own_traffic_works(host, g1, g2)  # restored, it works again


@pytest.mark.parametrize("backend", BACKENDS)
def test_dhcp_from_a_guest_without_address_or_ip_key(simhost, backend):
    host = simhost
    g = host.add_guest(3, guest_addr="")
    k = host.k
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", host.lan, "dnsmasq", "-d", "-C", "/dev/null", "--port=0", "--interface=lan0",
         "--bind-interfaces", f"--dhcp-range=10.{k}.0.100,10.{k}.0.150,2m", "--leasefile-ro",
         f"--pid-file={host.workdir}/dnsmasq.pid"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        vif_bridge(host, 3, "online", f"firewall={backend}", "antispoof=yes")
        cp = host.sh(g.ns, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true",
                     check=False, timeout=20)
        assert cp.returncode == 0, cp.stderr
        assert f"10.{k}.0.1" in cp.stderr + cp.stdout  # the lease came from the LAN's server
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(timeout=10)


# ------------------------------------------------------------------ compat
@pytest.mark.parametrize("backend", BACKENDS)
def test_compat_lets_guests_through_a_forward_policy_of_drop(two_guests, backend):
    host, g1, g2 = two_guests
    tool = "iptables-nft" if backend == "nft" else "iptables-legacy"
    host.sh(host.dom0, tool, "-P", "FORWARD", "DROP")
    for d in (1, 2):
        vif_bridge(host, d, "online", f"firewall={backend}")
    assert reaches(host, g1.ns, g2.ip)
    assert reaches(host, g2.ns, host.router_ip)
    assert reaches(host, host.lan, g1.ip)
    # without our rules (the links stay up on the bridge), the host's policy drops them again
    rules = ruleset(host)
    vif_bridge(host, 1, "offline", f"firewall={backend}")
    host.ip(host.dom0, "link", "set", g1.vif, "master", "xenbr0", "up")
    assert lines_naming(rules, "xs-vif1.0")
    assert not lines_naming(ruleset(host), "xs-vif1.0")
    assert not host.ping(g1.ns, host.router_ip, timeout=2)
    assert not host.ping(host.lan, g1.ip, timeout=1)
    assert reaches(host, g2.ns, host.router_ip)
    assert reaches(host, g1.ns, g2.ip)  # upstream's rules of vif2.0 accept all traffic to and from it


# ------------------------------------------------------------------ idempotency and cleanup
@pytest.mark.parametrize("backend", BACKENDS)
def test_online_twice_adds_nothing_and_offline_leaves_nothing_of_the_vif(two_guests, backend):
    host, g1, g2 = two_guests
    vif_bridge(host, 2, "online", f"firewall={backend}", "antispoof=yes")
    before = ruleset(host)
    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")
    once = ruleset(host)
    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")
    assert ruleset(host) == once
    assert lines_naming(once, g1.vif) and lines_naming(once, g1.ip)
    assert reaches(host, g1.ns, g2.ip)
    host.sh(host.dom0, "conntrack", "-I", "-s", g1.ip, "-d", host.router_ip, "-p", "udp", "--sport", "1000",
            "--dport", "2000", "--timeout", "300")
    host.sh(host.dom0, "conntrack", "-I", "-s", host.router_ip, "-d", g2.ip, "-p", "udp", "--sport", "1000",
            "--dport", "2000", "--timeout", "300")
    assert g1.ip in host.sh(host.dom0, "conntrack", "-L").stdout
    vif_bridge(host, 1, "offline", f"firewall={backend}")
    after = ruleset(host)
    assert not lines_naming(after, g1.vif, g1.mac, g1.ip, "vif1.0")
    assert lines_naming(after, g2.vif) == lines_naming(before, g2.vif)  # the other vif is untouched
    tracked = host.sh(host.dom0, "conntrack", "-L").stdout
    assert g1.ip not in tracked and f"dst={g2.ip} " in tracked  # the kernel deleted g1's, and only g1's
    vif_bridge(host, 1, "offline", f"firewall={backend}")  # again: quietly nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_offline_of_a_vanished_vif_still_removes_its_rules(two_guests, backend):
    host, g1, _g2 = two_guests
    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")
    assert lines_naming(ruleset(host), g1.vif)
    host.remove_guest_link(1)  # netback deleted the device before libxl ran offline
    vif_bridge(host, 1, "offline", f"firewall={backend}")
    assert not lines_naming(ruleset(host), g1.vif, g1.mac, g1.ip)


def test_auto_writes_to_legacy_when_legacy_tables_hold_rules(two_guests, syslog):
    host, _g1, _g2 = two_guests
    host.sh(host.dom0, "iptables-legacy", "-A", "INPUT", "-s", "192.0.2.1", "-j", "ACCEPT")
    vif_bridge(host, 1, "online", "antispoof=yes", XENSCRIPTS_SYSLOG=syslog.path)
    assert "-j xs-vif1.0" in host.sh(host.dom0, "iptables-legacy-save").stdout  # compat in legacy
    assert "xs-vif1.0" not in host.sh(host.dom0, "nft list ruleset").stdout      # not in iptables-nft
    assert '"vif1.0"' in host.sh(host.dom0, "nft list set bridge xenscripts vifs").stdout  # antispoof in nft
    syslog.wait_for(lambda packets: any("firewall: using legacy" in p for p in packets))
    # the L2 checks' mechanism on a legacy host, said at info level (<30>: daemon.info)
    syslog.wait_for(lambda packets: any(p.startswith("<30>") and "antispoof of vif1.0 in nft table bridge "
                                        "xenscripts (legacy host)" in p for p in packets))
    vif_bridge(host, 1, "offline")
    assert "vif1.0" not in host.sh(host.dom0, "iptables-legacy-save").stdout


def test_firewall_none_writes_nothing(two_guests):
    host, _g1, _g2 = two_guests
    before = ruleset(host)
    vif_bridge(host, 1, "online", "firewall=none")
    assert ruleset(host) == before


# ------------------------------------------------------------------ concurrency
@pytest.mark.parametrize("backend", BACKENDS)
def test_64_concurrent_onlines_then_offlines_with_iptables_w_lose_nothing(simhost, backend):
    host = simhost
    n, extra = 64, 40
    for d in range(1, n + 1):
        host.add_guest(d, ip=host.guest_ip(d))
    tool = "iptables-nft" if backend == "nft" else "iptables-legacy"
    env = {"XTABLES_LOCKFILE": lock_file(host)}
    results: list = []

    def online(d: int) -> None:
        results.append(host.run_hotplug(our_command("vif-bridge"), d, command="online",
                                        extra_args=(f"firewall={backend}", "antispoof=yes"),
                                        extra_env={"XENSCRIPTS_SYSLOG": "", **env}))

    def theirs() -> None:
        for i in range(extra):
            host.sh(host.dom0, tool, "-w", "-A", "INPUT", "-s", f"192.0.2.{i + 1}", "-j", "ACCEPT",
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env})

    threads = [threading.Thread(target=online, args=(d,)) for d in range(1, n + 1)]
    threads.append(threading.Thread(target=theirs))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [cp.returncode for cp in results] == [0] * n, [cp.stderr for cp in results if cp.returncode]
    saved = host.sh(host.dom0, f"{tool}-save").stdout
    assert sum(f"-s 192.0.2.{i + 1}/32 -j ACCEPT" in saved for i in range(extra)) == extra
    for d in range(1, n + 1):
        assert f"-j xs-vif{d}.0" in saved
        assert f"-j xs-spoof-vif{d}.0" not in saved  # antispoof is in the nft bridge table on both backends
    elements = host.sh(host.dom0, "nft list set bridge xenscripts vifs").stdout
    assert all(f'"vif{d}.0"' in elements for d in range(1, n + 1))
    # every lock released: the xtables lock can be taken at once
    assert host.sh(host.dom0, "flock", "-n", lock_file(host), "true", check=False).returncode == 0
    # and all of them offline at once: nothing of any of them is left, theirs untouched
    results.clear()
    threads = [threading.Thread(target=lambda d=d: results.append(host.run_hotplug(
        our_command("vif-bridge"), d, command="offline", extra_args=(f"firewall={backend}",),
        extra_env={"XENSCRIPTS_SYSLOG": "", **env}))) for d in range(1, n + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [cp.returncode for cp in results] == [0] * n, [cp.stderr for cp in results if cp.returncode]
    after = ruleset(host)
    assert not [line for line in after.splitlines() if re.search(r"vif\d+\.0\b", line)]
    assert sum(f"-s 192.0.2.{i + 1}/32 -j ACCEPT" in host.sh(host.dom0, f"{tool}-save").stdout
               for i in range(extra)) == extra


# ------------------------------------------------------------------ routed vifs
def vif_rules(host: SimHost, g, kind: str, online: bool, backend: str, antispoof: bool) -> None:
    """update_vif_rules in dom0 for a routed vif (vif-route/vif-nat call it the same way)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from xenscripts.firewall import FirewallSettings, VifFirewall, update_vif_rules as u;"
            "from xenscripts.core.log import RunLog;"
            "u(VifFirewall(sys.argv[2], sys.argv[3], sys.argv[4], (sys.argv[5],)), sys.argv[6] == 'online',"
            " FirewallSettings(sys.argv[7], sys.argv[8] == 'yes', xtables_lock=sys.argv[9]),"
            " RunLog('t', sys.stderr, None, None))")
    host.sh(host.dom0, sys.executable, "-c", code, str(REPO), g.vif, kind, g.mac, g.ip,
            "online" if online else "offline", backend, "yes" if antispoof else "no", lock_file(host))


@pytest.fixture
def routed_guest(require_root, xenstored):
    """dom0 without a bridge; guest 5 routed through vif5.0 (dom0's address on it, a host route)."""
    host = SimHost(xenstored)
    try:
        g = host.add_guest(5, bridge=None, ip=None)
        host.ip(host.dom0, "addr", "add", f"{host.dom0_ip}/32", "dev", g.vif)
        host.ip(host.dom0, "link", "set", g.vif, "up")
        for addr in (g.ip, f"10.{host.k}.0.99"):  # dom0 would answer the forged address too
            host.ip(host.dom0, "route", "add", f"{addr}/32", "dev", g.vif)
        yield host, g
    finally:
        host.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_routed_vif_antispoof_guards_dom0(routed_guest, backend):
    host, g = routed_guest

    def forged() -> dict[str, bool]:
        got = {}
        host.ip(g.ns, "addr", "flush", "dev", "eth0", "scope", "global")
        host.ip(g.ns, "addr", "add", f"10.{host.k}.0.99/24", "dev", "eth0")
        got["ip"] = reaches(host, g.ns, host.dom0_ip, 1.5)
        host.ip(g.ns, "addr", "flush", "dev", "eth0", "scope", "global")
        host.ip(g.ns, "addr", "add", f"{g.ip}/24", "dev", "eth0")
        flush_neighbours(host, host.dom0)
        host.sh(g.ns, PY, "-c", ARP_FORGERY, "eth0", g.mac, host.router_ip, host.dom0_ip)
        got["arp"] = wait_until(lambda: neighbour_mac(host, host.dom0, host.router_ip) == g.mac, 1)
        flush_neighbours(host, host.dom0, g.ns)
        return got

    vif_rules(host, g, "route", True, backend, antispoof=False)
    assert reaches(host, g.ns, host.dom0_ip)
    control = forged()
    assert all(control.values()), control
    vif_rules(host, g, "route", True, backend, antispoof=True)
    assert reaches(host, g.ns, host.dom0_ip)
    blocked = forged()
    assert not any(blocked.values()), blocked
    assert reaches(host, g.ns, host.dom0_ip)
    vif_rules(host, g, "route", False, backend, antispoof=True)
    assert not lines_naming(ruleset(host), g.vif, g.mac, g.ip)


# ------------------------------------------------------------------ network-level rules
def network_rules(host: SimHost, kind: str, netdev: str, starting: bool, backend: str) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from xenscripts.firewall import FirewallSettings, update_network_rules as u;"
            "from xenscripts.core.log import RunLog;"
            "u(sys.argv[2], sys.argv[3], None, sys.argv[4] == 'start',"
            " FirewallSettings(sys.argv[5], True, xtables_lock=sys.argv[6]), RunLog('network-test', sys.stderr, None,"
            " None))")
    host.sh(host.dom0, sys.executable, "-c", code, str(REPO), kind, netdev, "start" if starting else "stop",
            backend, lock_file(host))


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_bridge_antispoof_drops_forwarding_except_from_the_uplink(two_guests, backend):
    host, g1, _g2 = two_guests
    vif_bridge(host, 1, "online", "firewall=none")
    assert reaches(host, g1.ns, host.router_ip)
    network_rules(host, "bridge", "eth0", True, backend)
    network_rules(host, "bridge", "eth0", True, backend)
    tool = "iptables-nft-save" if backend == "nft" else "iptables-legacy-save"
    saved = host.sh(host.dom0, tool).stdout
    assert ":FORWARD DROP" in saved and saved.count("-A FORWARD -j xsnet-eth0") == 1
    assert "-A xsnet-eth0 -m physdev --physdev-in eth0 -j ACCEPT" in saved
    assert not host.ping(g1.ns, host.router_ip, timeout=1)  # replies from the guest are dropped
    network_rules(host, "bridge", "eth0", False, backend)
    saved = host.sh(host.dom0, tool).stdout
    assert ":FORWARD ACCEPT" in saved and "xsnet-eth0" not in saved
    assert reaches(host, g1.ns, host.router_ip)


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_nat_keeps_exactly_one_masquerade(simhost, backend):
    host = simhost
    for _ in range(2):
        network_rules(host, "nat", "eth0", True, backend)
    if backend == "nft":
        listing = host.sh(host.dom0, "nft list table ip xenscripts").stdout
        assert listing.count("oifname @masquerade_out masquerade") == 1
        assert 'elements = { "eth0" }' in listing
    else:
        saved = host.sh(host.dom0, "iptables-legacy-save -t nat").stdout
        assert saved.count("-A POSTROUTING -o eth0 -j MASQUERADE") == 1
    network_rules(host, "nat", "eth0", False, backend)
    network_rules(host, "nat", "eth0", False, backend)
    assert '"eth0"' not in host.sh(host.dom0, "nft list ruleset").stdout
    assert "MASQUERADE" not in host.sh(host.dom0, "iptables-legacy-save -t nat", check=False).stdout


@pytest.mark.parametrize("kind", ["bridge", "route"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_rules_go_in_for_a_vif_that_is_not_up_yet(simhost, backend, kind):
    """The vif frame installs the firewall before link up and routes: nothing of it needs the link."""
    host = simhost
    absent = type("Nic", (), {"vif": "vif9.0", "mac": "00:16:3e:00:09:00", "ip": host.guest_ip(9)})()
    assert host.link("vif9.0") is None
    vif_rules(host, absent, kind, True, backend, antispoof=True)
    family = "bridge" if kind == "bridge" else "inet"
    assert '"vif9.0"' in host.sh(host.dom0, f"nft list set {family} xenscripts vifs").stdout
    saved = host.sh(host.dom0, "iptables-nft-save" if backend == "nft" else "iptables-legacy-save").stdout
    assert "-j xs-vif9.0" in saved
    vif_rules(host, absent, kind, False, backend, antispoof=True)
    assert not lines_naming(ruleset(host), "vif9.0")


@pytest.mark.parametrize("backend", BACKENDS)
def test_antispoof_is_a_constant_number_of_nft_rules(two_guests, backend):
    """A vif under antispoof adds set elements only: the rules of our table are the same for one vif or two."""
    host, _g1, _g2 = two_guests

    def rules() -> int:
        listing = json.loads(host.sh(host.dom0, "nft", "-j", "list", "table", "bridge", "xenscripts").stdout)
        return sum("rule" in obj for obj in listing["nftables"])

    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")
    one = rules()
    vif_bridge(host, 2, "online", f"firewall={backend}", "antispoof=yes")
    assert one > 0 and rules() == one
    elements = host.sh(host.dom0, "nft list set bridge xenscripts vifs").stdout
    assert '"vif1.0"' in elements and '"vif2.0"' in elements


# ------------------------------------------------------------------ antispoof without a usable nf_tables
FAILING_NFT = "#!/bin/sh\necho 'Error: Could not process rule: Operation not supported' >&2\nexit 1\n"


@pytest.mark.skipif(os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon",
                    reason="in-process only: the nft command is replaced in the script's own mount namespace, "
                           "and a warm hotplugd has the binding loaded")
@pytest.mark.parametrize("backend", BACKENDS)
def test_antispoof_refuses_to_plug_where_nf_tables_cannot_be_used(two_guests, backend, tmp_path):
    """No python3-nftables, and an ``nft`` that fails as on a kernel without nf_tables: antispoof=yes refuses
    with the reason, nothing of the vif is left; compat alone still plugs (legacy: it needs no nf_tables)."""
    host, g1, _g2 = two_guests
    fake = tmp_path / "nft"
    fake.write_text(FAILING_NFT)
    fake.chmod(0o755)
    without_nf_tables = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /usr/sbin/nft && exec "$@"', str(fake),
                         *our_command("vif-bridge")]
    env = {"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": lock_file(host),
           "XENSCRIPTS_SOCKET": f"{host.workdir}/no-hotplugd.sock",
           "XENSCRIPTS_NFTABLES_BINDING": "/nonexistent/nftables/__init__.py"}
    before = ruleset(host)
    cp = host.run_hotplug(without_nf_tables, 1, extra_args=(f"firewall={backend}", "antispoof=yes"), extra_env=env)
    assert cp.returncode == 1, cp.stderr
    error = host.xs.read(f"{g1.backend}/hotplug-error") or ""
    assert "antispoof=yes needs the kernel's nf_tables" in error and "Operation not supported" in error, error
    assert f"Not plugging {g1.vif} with a weaker policy" in error and error in cp.stderr
    assert host.xs.read(f"{g1.backend}/hotplug-status") == "error"
    assert ruleset(host) == before  # not even compat
    link = host.link(g1.vif)
    assert link is not None and not link.get("master") and "UP" not in link["flags"]
    if backend == "legacy":
        cp = host.run_hotplug(without_nf_tables, 1, extra_args=("firewall=legacy", "antispoof=no"), extra_env=env)
        assert cp.returncode == 0, cp.stderr
        assert "-j xs-vif1.0" in host.sh(host.dom0, "iptables-legacy-save").stdout
        assert host.run_hotplug(without_nf_tables, 1, command="offline", extra_env=env).returncode == 0


# ------------------------------------------------------------------ order: rules before link up and routes
@pytest.mark.parametrize("script", ["vif-bridge", "vif-route", "vif-nat"])
def test_every_vif_script_installs_the_rules_before_the_link_is_up_or_routed(require_root, xenstored, script):
    """The run is caught inside its firewall step: antispoof is in, and the compat batch (legacy backend)
    waits for the xtables lock this test holds. Then the vif is still down, off the bridge, without
    addresses or routes. Once the lock is let go the run finishes and the vif is up."""
    import fcntl

    host = SimHost(xenstored)
    try:
        if script == "vif-bridge":
            host.add_bridge("xenbr0", uplink=True)
            g = host.add_guest(1, ip=host.guest_ip(1))
        else:
            g = host.add_guest(1, bridge=None, script=f"/etc/xen/scripts/{script}",
                               ip=host.guest_ip(1) if script == "vif-route" else None, guest_addr="")
        family = "bridge" if script == "vif-bridge" else "inet"
        lock = open(lock_file(host), "w")  # noqa: SIM115 - held across the run below
        fcntl.flock(lock, fcntl.LOCK_EX)
        done: list[subprocess.CompletedProcess] = []
        run = threading.Thread(target=lambda: done.append(host.run_hotplug(
            our_command(script), 1, extra_args=("firewall=legacy", "antispoof=yes"),
            extra_env={"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": lock_file(host),
                       "XENSCRIPTS_STATE_DIR": f"{host.workdir}/run"})))
        run.start()
        try:
            assert wait_until(lambda: '"vif1.0"' in host.sh(host.dom0, "nft", "list", "set", family, "xenscripts",
                                                             "vifs", check=False).stdout, timeout=8, interval=0.02)
            link = host.link(g.vif)
            assert link is not None and "UP" not in link["flags"] and not link.get("master"), link
            assert not [a for a in host.addrs() if a["ifname"] == g.vif and any(
                i.get("scope") != "link" for i in a.get("addr_info", []))]
            assert not [r for r in host.routes() if r.get("dev") == g.vif]
            assert run.is_alive()  # still in its firewall step: what was looked at is what it had done so far
        finally:
            lock.close()  # lets the compat batch through
            run.join(timeout=60)
        assert done and done[0].returncode == 0, done[0].stderr if done else "no result"
        assert "UP" in host.link(g.vif)["flags"]
        cp = host.run_hotplug(our_command(script), 1, command="offline",
                              extra_env={"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": lock_file(host),
                                         "XENSCRIPTS_STATE_DIR": f"{host.workdir}/run"})
        assert cp.returncode == 0, cp.stderr
    finally:
        host.close()


# ------------------------------------------------------------------ state that cannot drift
def set_elements(host: SimHost, family: str = "bridge") -> str:
    """Every element of our table's sets, as nft lists them."""
    return host.sh(host.dom0, "nft", "list", "table", family, "xenscripts", check=False).stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_reonline_with_another_ip_and_mac_swaps_the_allowances(two_guests, backend):
    """The vif's ``ip`` and ``mac`` change between two onlines (or a vif name is reused after a missed offline):
    the old MAC and address no longer pass, the new ones do, and no rule or element names the old ones."""
    from xensim import probes as p

    host, g1, g2 = two_guests
    k = host.k
    old_ip, new_ip, new_mac = g1.ip, f"10.{k}.0.77", "00:16:3e:00:77:77"
    vif_bridge(host, 2, "online", f"firewall={backend}", "antispoof=yes")
    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")

    def reaching_g2() -> set[str]:
        frames = {name: p.ether(g2.mac, mac, 0x0800, p.ipv4(ip, g2.ip, 17, p.udp(40000, 9999, name.encode())))
                  for name, mac, ip in (("XSP-old-XSP", g1.mac, old_ip), ("XSP-new-XSP", new_mac, new_ip))}
        watch = p.Watch(g2.ns, ["packet=eth0"], list(frames))
        p.send(g1.ns, "eth0", list(frames.values()))
        return set(watch.seen())

    assert reaching_g2() == {"XSP-old-XSP"}
    host.xs.write(f"{g1.backend}/ip", new_ip)
    host.xs.write(f"{g1.backend}/mac", new_mac)
    vif_bridge(host, 1, "online", f"firewall={backend}", "antispoof=yes")
    assert reaching_g2() == {"XSP-new-XSP"}
    rules = ruleset(host)
    assert not lines_naming(rules, old_ip, g1.mac, g1.mac.replace(":", ""))
    assert lines_naming(rules, new_ip) and lines_naming(rules, new_mac)
    vif_bridge(host, 1, "offline", f"firewall={backend}")
    assert not lines_naming(ruleset(host), new_ip, new_mac, g1.vif)


@pytest.mark.parametrize(("online", "offline"), [("nft", "legacy"), ("legacy", "nft")])
def test_offline_removes_with_the_backend_online_used(two_guests, online, offline):
    """The host's firewall setting changed between online and offline: offline still removes every rule."""
    host, g1, _g2 = two_guests
    vif_bridge(host, 1, "online", f"firewall={online}", "antispoof=yes")
    assert lines_naming(ruleset(host), g1.vif)
    vif_bridge(host, 1, "offline", f"firewall={offline}")
    assert not lines_naming(ruleset(host), g1.vif, g1.mac, g1.ip)


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_bridge_stop_puts_back_a_forward_policy_of_drop(require_root, xenstored, backend):
    """A host whose FORWARD policy was DROP before ``network-bridge start antispoof=yes`` has DROP after stop
    (and one with ACCEPT, ACCEPT: the other test of network-bridge's firewall)."""
    from xensim.routed import run_network

    host = SimHost(xenstored)
    try:
        tool = "iptables-nft" if backend == "nft" else "iptables-legacy"
        host.sh(host.dom0, tool, "-P", "FORWARD", "DROP")
        args = ("netdev=eth0", "antispoof=yes", f"firewall={backend}")
        for command in ("start", "start", "stop"):
            cp = run_network(host, "network-bridge", command, *args)
            assert cp.returncode == 0, cp.stderr
            saved = host.sh(host.dom0, f"{tool}-save", "-t", "filter").stdout
            assert ":FORWARD DROP" in saved
            assert ("-A FORWARD -j xsnet-peth0" in saved) == (command == "start"), saved
    finally:
        host.close()


# ------------------------------------------------------------------ conntrack
CONNTRACK_FLUSH = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from xenscripts.firewall import conntrack
def no_dump(*_args):
    raise AssertionError("the dump fallback ran: the kernel's filtered delete was not used")
conntrack._dump_and_delete = no_dump
deadline = time.monotonic() + (float(sys.argv[3]) if sys.argv[3] != "past" else -1)
try:
    print(conntrack.flush_addresses((sys.argv[2],), deadline))
except TimeoutError as e:
    print("timeout:", e)
"""


def test_conntrack_entries_go_by_the_kernels_filtered_delete_within_the_deadline(simhost):
    """Only the address's entries go, by the kernel's filtered delete (the dump fallback is disabled);
    a run whose deadline has passed sends nothing and says so."""
    host = simhost
    k = host.k
    mine, other = f"10.{k}.0.11", f"10.{k}.0.12"

    def insert(src: str, dst: str) -> None:
        host.sh(host.dom0, "conntrack", "-I", "-s", src, "-d", dst, "-p", "udp", "--sport", "1000", "--dport",
                "2000", "--timeout", "300")

    insert(mine, host.router_ip)
    insert(host.router_ip, mine)
    insert(other, host.router_ip)
    flush = [sys.executable, "-c", CONNTRACK_FLUSH, str(REPO), mine]
    out = host.sh(host.dom0, *flush, "past").stdout
    assert out.startswith("timeout:"), out
    assert mine in host.sh(host.dom0, "conntrack", "-L").stdout  # nothing sent after the deadline
    assert host.sh(host.dom0, *flush, "5").stdout.strip() == "1"
    tracked = host.sh(host.dom0, "conntrack", "-L").stdout
    assert mine not in tracked and f"src={other} " in tracked
