"""``xenscripts status --vif``: one guest's NIC, what its online recorded and every rule naming it."""

from __future__ import annotations

import json
import subprocess

from tests.host.test_admin import xenscripts
from xensim.ours import our_command


def test_one_guests_firewall_is_shown_and_only_its_own(simhost, tmp_path):
    host = simhost
    g1 = host.add_guest(1, ip=host.guest_ip(1))
    host.add_guest(2, ip=host.guest_ip(2))
    for d in (1, 2):
        cp = host.run_hotplug(our_command("vif-bridge"), d, extra_args=("firewall=nft", "antispoof=yes"),
                              extra_env={"XENSCRIPTS_SYSLOG": ""})
        assert cp.returncode == 0, cp.stderr
    cp = xenscripts(host, tmp_path, "status", "--vif", g1.vif, "--json")
    assert cp.returncode == 0, cp.stderr
    report = json.loads(cp.stdout)
    assert report["record"] == {"backend": "nft", "antispoof": True, "ips": [host.guest_ip(1)], "mac": g1.mac}
    # the independent observer: the same lines are in nft's own listing, and none is guest 2's
    ruleset = subprocess.run(["ip", "netns", "exec", host.dom0, "nft", "list", "ruleset"], capture_output=True,
                             text=True, check=True).stdout
    ours = [line.strip() for line in ruleset.splitlines() if g1.vif in line or g1.mac in line.lower()]
    assert ours and set(ours) <= set(report["rules"]), (ours, report["rules"])
    assert not [line for line in report["rules"] if "vif2.0" in line]
    text = xenscripts(host, tmp_path, "status", "--vif", g1.vif).stdout
    assert f"online recorded backend nft, antispoof yes, addresses {host.guest_ip(1)}" in text
    missing = xenscripts(host, tmp_path, "status", "--vif", "vif9.0")
    assert missing.returncode == 1 and "no guest NIC vif9.0 in xenstore (known: vif1.0, vif2.0)" in missing.stderr
