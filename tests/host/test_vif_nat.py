"""vif-nat and network-nat on a simulated host with a plain uplink: private guest network, NAT, DHCP.

Observers: ``ip -j`` and ``sysctl`` in dom0, ``nft``/``iptables-save`` for
the MASQUERADE, a UDP listener in the LAN namespace (the source address it
sees), the DHCP server's hosts file and a real DHCP client in the guest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xensim.host import SimHost
from xensim.ours import our_command
from xensim.routed import (
    configure_nat_guest,
    dhcp_lease,
    isc_dhcpd_env,
    masquerade_rules,
    nat_guest_address,
    run_network,
    state_dir,
    stop_isc_dhcpd,
    sysctl,
    udp_source_seen_by_lan,
)

VIF_NAT = our_command("vif-nat")


@pytest.fixture
def nat(require_root, xenstored):
    """A SimHost with a plain uplink (dom0's address on eth0), no bridge."""
    host = SimHost(xenstored)
    try:
        yield host
    finally:
        run_network(host, "network-nat", "stop", "dhcp=yes")  # never leave a dnsmasq behind
        host.close()


def _add_nat_guest(host: SimHost, domid: int, devid: int = 0, **kw):
    return host.add_guest(domid, devid, bridge=None, script="/etc/xen/scripts/vif-nat", guest_addr="", **kw)


def _dom0_state(host: SimHost) -> dict:
    addrs = {a["ifname"]: sorted((i["local"], i["prefixlen"]) for i in a.get("addr_info", [])
                                 if i.get("scope") != "link") for a in host.addrs()}
    routes = sorted((r["dst"], r.get("dev"), r.get("prefsrc")) for r in host.routes())
    up = {link["ifname"]: "UP" in link["flags"] for link in host.links()}
    vifs = [name for name in up if name.startswith("vif")]
    return {"addrs": addrs, "routes": routes, "up": up, "ip_forward": sysctl(host, "net.ipv4.ip_forward"),
            "proxy_arp": {v: sysctl(host, f"net/ipv4/conf/{v}/proxy_arp") for v in vifs}}


def _env(host: SimHost, **extra: str) -> dict:
    return {"XENSCRIPTS_STATE_DIR": state_dir(host), **extra}


def test_nat_guest_online_twice_then_offline(nat):
    host = nat
    guest = _add_nat_guest(host, 1)
    before = _dom0_state(host)
    address, router = nat_guest_address(1)
    for _ in range(2):
        host.xs.write(guest.backend + "/hotplug-status", "")
        cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env=_env(host))
        assert cp.returncode == 0, cp.stderr
        assert host.xs.read(guest.backend + "/hotplug-status") == "connected"
        state = _dom0_state(host)
        assert state["addrs"]["vif1.0"] == [(router, 32)]
        assert (address, "vif1.0", router) in state["routes"]
        assert state["proxy_arp"]["vif1.0"] == "1" and state["up"]["vif1.0"]
    configure_nat_guest(host, guest, address, router)
    assert host.ping(guest.ns, router, timeout=5)
    for _ in range(2):
        cp = host.run_hotplug(VIF_NAT, 1, command="offline", extra_env=_env(host))
        assert cp.returncode == 0, cp.stderr
        after = _dom0_state(host)
        assert after["addrs"] == before["addrs"] and after["routes"] == before["routes"]
        assert after["up"]["vif1.0"] is False


def test_vif1_1_never_matches_vif1_10(nat):
    host = nat
    _add_nat_guest(host, 1, 10)
    _add_nat_guest(host, 1, 1)
    for devid in (10, 1):
        cp = host.run_hotplug(VIF_NAT, 1, devid, command="online", extra_env=_env(host))
        assert cp.returncode == 0, cp.stderr
    state = _dom0_state(host)
    assert state["addrs"]["vif1.10"] == [("10.0.1.138", 32)]  # guest .11, router .11+127
    assert state["addrs"]["vif1.1"] == [("10.0.1.129", 32)]
    assert ("10.0.1.2", "vif1.1", "10.0.1.129") in state["routes"]
    assert host.run_hotplug(VIF_NAT, 1, 1, command="offline", extra_env=_env(host)).returncode == 0
    state = _dom0_state(host)
    assert ("10.0.1.11", "vif1.10", "10.0.1.138") in state["routes"]
    assert not [r for r in state["routes"] if r[1] == "vif1.1"]


def test_explicit_ip_and_router_above_127(nat):
    host = nat
    guest = _add_nat_guest(host, 2, ip="192.168.7.200/24")
    cp = host.run_hotplug(VIF_NAT, 2, command="online", extra_env=_env(host))
    assert cp.returncode == 0, cp.stderr
    state = _dom0_state(host)
    assert state["addrs"]["vif2.0"] == [("192.168.7.73", 32)]  # 200 - 127: upstream's +127 gives 327
    configure_nat_guest(host, guest, "192.168.7.200", "192.168.7.73", 24)
    assert host.ping(guest.ns, "192.168.7.73", timeout=5)


def test_bad_guest_ip_changes_nothing(nat):
    host = nat
    guest = _add_nat_guest(host, 1, ip="10.0.1.255")
    before = _dom0_state(host)
    cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env=_env(host))
    assert cp.returncode == 1
    assert host.xs.read(guest.backend + "/hotplug-error") == \
        "Invalid guest address 10.0.1.255: the last octet must be 1..254"
    assert _dom0_state(host) == before


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_network_nat_masquerades_guest_traffic(nat, backend):
    host = nat
    guest = _add_nat_guest(host, 1)
    before = _dom0_state(host)
    before_rules = masquerade_rules(host)
    for _ in range(2):
        cp = run_network(host, "network-nat", "start", f"firewall={backend}")
        assert cp.returncode == 0, cp.stderr
        assert sysctl(host, "net.ipv4.ip_forward") == "1"
    assert masquerade_rules(host) == before_rules + 1
    legacy_rules = host.sh(host.dom0, "iptables-legacy-save", "-t", "nat", check=False).stdout.count("MASQUERADE")
    assert legacy_rules == (1 if backend == "legacy" else 0)
    env = _env(host, firewall=backend)
    assert host.run_hotplug(VIF_NAT, 1, command="online", extra_env=env).returncode == 0
    configure_nat_guest(host, guest, *nat_guest_address(1))
    assert udp_source_seen_by_lan(host, guest.ns) == host.dom0_ip
    assert host.ping(guest.ns, host.router_ip, timeout=5)
    assert host.run_hotplug(VIF_NAT, 1, command="offline", extra_env=env).returncode == 0
    for _ in range(2):
        assert run_network(host, "network-nat", "stop").returncode == 0  # start remembered the backend
        assert masquerade_rules(host) == before_rules
        assert _dom0_state(host)["ip_forward"] == before["ip_forward"]


def test_network_nat_status_and_unknown_command(nat):
    host = nat
    cp = run_network(host, "network-nat", "status", "--json")
    assert cp.returncode == 0 and '"started": false' in cp.stdout, cp.stdout + cp.stderr
    cp = run_network(host, "network-nat", "restart")
    assert (cp.returncode, cp.stderr) == (1, "Unknown command: restart\nValid commands are: start, stop, status\n")
    before = _dom0_state(host)
    cp = run_network(host, "network-nat", "start", "netdev=nosuch0")
    assert cp.returncode == 1 and "nosuch0 does not exist" in cp.stderr
    cp = run_network(host, "network-nat", "start", "dhcp=maybe")
    assert cp.returncode == 1 and "Invalid dhcp='maybe'" in cp.stderr
    assert _dom0_state(host) == before
    assert not os.listdir(state_dir(host))


def _dnsmasq_pid(host: SimHost) -> int | None:
    try:
        with open(os.path.join(state_dir(host), "dnsmasq", "pid"), encoding="ascii") as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/comm", encoding="ascii") as f:
            return pid if f.read().strip() == "dnsmasq" else None
    except (OSError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return None


def test_dnsmasq_serves_the_guest_its_fixed_address(nat):
    host = nat
    guest = _add_nat_guest(host, 1)
    hosts_file = os.path.join(state_dir(host), "dnsmasq", "hosts")
    for _ in range(2):
        cp = run_network(host, "network-nat", "start", "dhcp=yes")
        assert cp.returncode == 0, cp.stderr
    pid = _dnsmasq_pid(host)
    assert pid is not None
    with open(f"/proc/{pid}/cmdline", encoding="ascii") as f:
        assert "--except-interface=eth0" in f.read().split("\0")
    for _ in range(2):
        cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env=_env(host, dhcp="yes"))
        assert cp.returncode == 0, cp.stderr
        with open(hosts_file, encoding="ascii") as f:
            assert f.read() == f"{guest.mac},10.0.1.1,dom1,infinite\n"
    assert _dnsmasq_pid(host) == pid  # reloaded by SIGHUP, never restarted
    lease = dhcp_lease(host, guest.ns, guest.guest_if)
    assert lease == {"ip": "10.0.1.1", "subnet": "255.255.0.0", "router": "10.0.1.128", "hostname": "dom1"}
    assert dhcp_lease(host, host.lan, "lan0", tries=1) is None  # never served on the uplink
    configure_nat_guest(host, guest, lease["ip"], lease["router"])
    if masquerade_rules(host):
        assert udp_source_seen_by_lan(host, guest.ns) == host.dom0_ip
    assert host.run_hotplug(VIF_NAT, 1, command="offline", extra_env=_env(host, dhcp="yes")).returncode == 0
    with open(hosts_file, encoding="ascii") as f:
        assert f.read() == ""
    assert run_network(host, "network-nat", "stop").returncode == 0  # start remembered dhcp=yes
    assert _dnsmasq_pid(host) is None
    assert _process_state(pid) in (None, "Z")  # gone, or dead and waiting for init to reap it
    assert os.listdir(state_dir(host)) == []


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def test_isc_dhcpd_serves_the_guest_through_its_edited_config(nat):
    host = nat
    env = isc_dhcpd_env(host)
    conf, args = env["XENSCRIPTS_DHCPD_CONF"], env["XENSCRIPTS_DHCPD_ARGS"]
    try:
        guest = _add_nat_guest(host, 1)
        original = _read(conf)
        for _ in range(2):
            cp = run_network(host, "network-nat", "start", "dhcp=isc", extra_env=env)
            assert cp.returncode == 0, cp.stderr
            assert _read(conf).count("subnet 10.0.0.0 netmask 255.255.0.0 {") == 1
        for _ in range(2):
            cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env={**_env(host), **env, "dhcp": "isc"})
            assert cp.returncode == 0, cp.stderr
        text = _read(conf)
        assert os.path.islink(conf)  # edited through the link
        assert text.count("host dom1 {") == 1 and "host dom10 {" in text
        assert (f'host dom1 {{ hardware ethernet {guest.mac}; fixed-address 10.0.1.1; option routers 10.0.1.128; '
                'option host-name "dom1"; }') in text
        assert 'INTERFACESv4="vif1.0"' in _read(args)
        lease = dhcp_lease(host, guest.ns, guest.guest_if)
        assert lease is not None and (lease["ip"], lease["router"]) == ("10.0.1.1", "10.0.1.128")
        cp = host.run_hotplug(VIF_NAT, 1, command="offline", extra_env={**_env(host), **env, "dhcp": "isc"})
        assert cp.returncode == 0, cp.stderr
        assert "host dom1 {" not in _read(conf) and "host dom10 {" in _read(conf)
        assert 'INTERFACESv4=""' in _read(args)
        assert run_network(host, "network-nat", "stop", "dhcp=isc", extra_env=env).returncode == 0
        assert _read(conf) == original
    finally:
        stop_isc_dhcpd(host)


def test_unwritable_dhcp_config_changes_nothing(nat):
    host = nat
    guest = _add_nat_guest(host, 1)
    before = _dom0_state(host)
    env = {**_env(host), **isc_dhcpd_env(host), "dhcp": "isc", "XENSCRIPTS_DHCPD_CONF": "/proc/version"}
    cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env=env)
    assert cp.returncode == 1
    assert host.xs.read(guest.backend + "/hotplug-error").startswith("Cannot write /proc/version: ")
    assert _dom0_state(host) == before


def test_hooks_see_the_nat_plan(nat, tmp_path):
    host = nat
    _add_nat_guest(host, 1)
    hooks = tmp_path / "scripts" / "vif-post.d"
    hooks.mkdir(parents=True)
    out = tmp_path / "seen"
    hook = hooks / "10-record.hook"
    hook.write_text(f'echo "$command $dev $vif_ip $router_ip $hostname" >> {out}\n')
    hook.chmod(0o755)
    env = {**_env(host), "XENSCRIPTS_SCRIPT_DIR": str(tmp_path / "scripts")}
    assert host.run_hotplug(VIF_NAT, 1, command="online", extra_env=env).returncode == 0
    assert host.run_hotplug(VIF_NAT, 1, command="offline", extra_env=env).returncode == 0
    assert out.read_text() == "online vif1.0 10.0.1.1 10.0.1.128 dom1\noffline vif1.0 10.0.1.1 10.0.1.128 dom1\n"


def test_network_nat_without_dhcpd_files_changes_nothing(nat):
    host = nat
    before = _dom0_state(host), masquerade_rules(host)
    missing = os.path.join(host.workdir, "missing.conf")
    for env, tried in (({"XENSCRIPTS_DHCPD_CONF": missing}, f"(dhcpd_conf={missing} does not exist; "),
                       ({**isc_dhcpd_env(host), "XENSCRIPTS_DHCPD_RESTART": "/nonexistent/restart"},
                        "(dhcpd_restart: /nonexistent/restart is not executable; ")):
        cp = run_network(host, "network-nat", "start", "dhcp=isc", extra_env=env)
        assert cp.returncode == 1 and f"Failed to find dhcpd configuration or init file. {tried}" in cp.stderr, \
            cp.stderr
        assert (_dom0_state(host), masquerade_rules(host)) == before
        assert os.listdir(state_dir(host)) == []


def test_concurrent_onlines_keep_every_dhcp_entry(nat):
    """The vif-nat-dhcp lock: four guests going online at once all end up in the hosts file."""
    from concurrent.futures import ThreadPoolExecutor

    host = nat
    domids = (1, 2, 3, 4)
    for domid in domids:
        _add_nat_guest(host, domid)
    env = _env(host, dhcp="yes")
    with ThreadPoolExecutor(len(domids)) as pool:
        results = list(pool.map(lambda d: host.run_hotplug(VIF_NAT, d, command="online", extra_env=env), domids))
    assert [cp.returncode for cp in results] == [0] * len(domids), [cp.stderr for cp in results]
    lines = _read(os.path.join(state_dir(host), "dnsmasq", "hosts")).splitlines()
    assert sorted(lines) == sorted(f"{host.default_mac(d)},10.0.{d}.1,dom{d},infinite" for d in domids)
    with ThreadPoolExecutor(len(domids)) as pool:
        results = list(pool.map(lambda d: host.run_hotplug(VIF_NAT, d, command="offline", extra_env=env), domids))
    assert [cp.returncode for cp in results] == [0] * len(domids)
    assert not os.path.exists(os.path.join(state_dir(host), "dnsmasq", "hosts")) or \
        _read(os.path.join(state_dir(host), "dnsmasq", "hosts")) == ""


def test_offline_after_teardown_still_removes_the_dhcp_entry(nat):
    host = nat
    guest = _add_nat_guest(host, 1)
    assert host.run_hotplug(VIF_NAT, 1, command="online", extra_env=_env(host, dhcp="yes")).returncode == 0
    host.remove_guest_link(1)
    host.xs.rm(guest.backend)
    cp = host.run_hotplug(VIF_NAT, 1, command="offline", extra_env=_env(host, dhcp="yes"))
    assert cp.returncode == 0, cp.stderr
    assert _read(os.path.join(state_dir(host), "dnsmasq", "hosts")) == ""
    assert host.xs.read(guest.backend) is None  # nothing written into the torn-down directory


def test_a_vifname_a_shell_would_run_never_reaches_dhcpds_args_file(nat):
    host = nat
    guest = _add_nat_guest(host, 1, vifname="$(touch${IFS}x)")  # a name the kernel accepts
    env = {**_env(host), **isc_dhcpd_env(host), "dhcp": "isc"}
    files = {k: Path(env[k]).read_text() for k in ("XENSCRIPTS_DHCPD_CONF", "XENSCRIPTS_DHCPD_ARGS")}
    before = _dom0_state(host)
    cp = host.run_hotplug(VIF_NAT, 1, command="online", extra_env=env)
    assert cp.returncode == 1
    assert "arguments file (read as shell)" in host.xs.read(guest.backend + "/hotplug-error")
    assert {k: Path(env[k]).read_text() for k in files} == files
    assert _dom0_state(host) == before
