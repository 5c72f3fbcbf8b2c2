"""A guest's VLAN on a Linux bridge: the backend ``vlan`` key as bridge VLAN filtering on the vif's port.

Observed with ``bridge -j vlan``, ``ip -j -d link`` and pings. Where the
kernel's bridge has no VLAN filtering (this machine's: no
CONFIG_BRIDGE_VLAN_FILTERING), the real-traffic tests skip saying so and
the refusal is tested instead; the requests themselves are goldens in
tests/unit/test_bridgevlan.py.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from xensim.host import SimHost
from xensim.ours import our_command


def _kernel_has_vlan_filtering() -> bool:
    ns = f"xs-vlanprobe-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=False, capture_output=True)
    try:
        cp = subprocess.run(["ip", "-n", ns, "link", "add", "b0", "type", "bridge", "vlan_filtering", "1"],
                            check=False, capture_output=True)
        return cp.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)


HAS_FILTERING = _kernel_has_vlan_filtering()
needs_filtering = pytest.mark.skipif(not HAS_FILTERING, reason="this kernel's bridge has no vlan_filtering "
                                     "(CONFIG_BRIDGE_VLAN_FILTERING off): goldens in tests/unit/test_bridgevlan.py")


def hotplug(host: SimHost, domid: int, command: str = "online", extra_args: tuple[str, ...] = ()) \
        -> subprocess.CompletedProcess:
    return host.run_hotplug(our_command("vif-bridge"), domid, 0, command, extra_args=extra_args,
                            extra_env={"XENSCRIPTS_SYSLOG": ""})


def ok(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert cp.returncode == 0, f"exit {cp.returncode}\nstderr: {cp.stderr}"
    return cp


def port_vlans(host: SimHost, dev: str) -> list[dict]:
    cp = subprocess.run(["bridge", "-n", host.dom0, "-j", "vlan", "show", "dev", dev], capture_output=True,
                        text=True, check=True)
    rows = json.loads(cp.stdout or "[]")
    return next((r["vlans"] for r in rows if r.get("ifname") == dev), [])


def filtering(host: SimHost, bridge: str = "xenbr0") -> int:
    return host.link(bridge)["linkinfo"]["info_data"]["vlan_filtering"]


def untouched(host: SimHost, guest, before: dict) -> None:
    after = host.link(guest.vif)
    assert (after["address"], after.get("master"), "UP" in after["flags"]) == \
        (before["address"], before.get("master"), "UP" in before["flags"])


@pytest.mark.parametrize(("vlan", "words"), [
    ("10/20", "must be marked as the PVID"),
    ("10p/11p", "two PVIDs"),
    ("0", "outside 1-4094"),
    ("10;reboot", "is not N"),
])
def test_bad_vlan_key_names_key_and_value_and_configures_nothing(simhost, vlan, words):
    g = simhost.add_guest(1, extra_backend={"vlan": vlan})
    before = simhost.link(g.vif)
    cp = hotplug(simhost, 1)
    assert cp.returncode == 1
    error = simhost.xs.read(f"{g.backend}/hotplug-error") or ""
    assert error.startswith(f"Invalid {g.xenbus_path}/vlan {vlan!r}") and words in error, error
    untouched(simhost, g, before)


@pytest.mark.parametrize(("vlan", "refused"), [("10p/20-22", True), ("10", False), ("10p/11u", False)])
def test_antispoof_refuses_tagged_vlans_it_would_silently_drop(simhost, vlan, refused):
    """antispoof=yes drops a guest's tagged frames: a vlan key with tagged VLANs is refused, not half-working."""
    g = simhost.add_guest(1, mac="00:16:3e:00:01:00", extra_backend={"vlan": vlan})
    before = simhost.link(g.vif)
    cp = hotplug(simhost, 1, extra_args=("antispoof=yes",))
    error = simhost.xs.read(f"{g.backend}/hotplug-error") or ""
    if refused:
        assert cp.returncode == 1
        assert "antispoof=yes drops every tagged frame" in error and "(20-22)" in error, error
        untouched(simhost, g, before)
    else:  # untagged VLANs only: what stops it here is this kernel's missing vlan_filtering, if anything
        assert "tagged frame" not in error


def test_bridge_dot_tag_is_refused_with_what_it_means(simhost):
    g = simhost.add_guest(1, bridge="xenbr0.10")
    before = simhost.link(g.vif)
    cp = hotplug(simhost, 1)
    assert cp.returncode == 1
    error = simhost.xs.read(f"{g.backend}/hotplug-error") or ""
    assert error.startswith("Could not find bridge device xenbr0.10"), error  # upstream's words first
    assert "vlan=10" in error and "vif-openvswitch" in error, error
    untouched(simhost, g, before)


def test_a_bridge_really_named_with_a_dot_is_used(simhost):
    simhost.add_bridge("br0.10", uplink=False)
    g = simhost.add_guest(1, bridge="br0.10")
    ok(hotplug(simhost, 1))
    assert simhost.master_of(g.vif) == "br0.10"


@pytest.mark.skipif(HAS_FILTERING, reason="this kernel has VLAN filtering: the real tests below run instead")
def test_vlan_key_without_kernel_filtering_is_a_clear_error_and_rolls_back(simhost):
    g = simhost.add_guest(1, extra_backend={"vlan": "10"})
    before = simhost.link(g.vif)
    cp = hotplug(simhost, 1)
    assert cp.returncode == 1
    error = simhost.xs.read(f"{g.backend}/hotplug-error") or ""
    assert "vlan_filtering" in error and f"{g.xenbus_path}/vlan '10'" in error, error
    assert simhost.xs.read(f"{g.backend}/hotplug-status") == "error"
    untouched(simhost, g, before)
    assert filtering(simhost) == 0


@needs_filtering
def test_vlan_key_sets_the_ports_vlans_and_isolates(simhost):
    for domid, vlan in ((1, "10"), (2, "10"), (3, "20")):
        simhost.add_guest(domid, extra_backend={"vlan": vlan})
        ok(hotplug(simhost, domid))
    assert filtering(simhost) == 1
    assert port_vlans(simhost, "vif1.0") == [{"vlan": 10, "flags": ["PVID", "Egress Untagged"]}]
    g1 = simhost.guests[(1, 0)]
    assert simhost.ping(g1.ns, simhost.guest_ip(2), count=1, timeout=6)  # -w: retried until a reply
    assert not simhost.ping(g1.ns, simhost.guest_ip(3), count=1, timeout=1)


@needs_filtering
def test_vlan_trunk_online_twice_and_offline(simhost):
    simhost.add_guest(1, extra_backend={"vlan": "10p/100-102/200u"})
    ok(hotplug(simhost, 1))
    first = port_vlans(simhost, "vif1.0")
    assert {v["vlan"] for v in first} >= {10, 200} and 1 not in {v["vlan"] for v in first}
    ok(hotplug(simhost, 1))
    assert port_vlans(simhost, "vif1.0") == first
    ok(hotplug(simhost, 1, "offline"))
    assert simhost.master_of("vif1.0") is None
