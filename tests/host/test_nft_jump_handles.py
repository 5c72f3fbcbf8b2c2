"""Offline on an nft host deletes a vif's FORWARD jumps by the handles hotplugd noted at online, each
checked in the kernel first: never an admin's rule that took a recycled handle, and no listing of FORWARD."""

from __future__ import annotations

import json
import subprocess
import sys

from xensim.ours import REPO

# Runs in dom0 as hotplugd would: one process, the context pool installed (it holds the noted handles).
PROBE = """
import json, os, subprocess, sys, time
from xenscripts.core.request import Request, serving
from xenscripts.firewall import FirewallSettings, VifFirewall, libnft, update_vif_rules
from xenscripts.firewall.nftnl import head_jumps, netlink_socket, rule_jumps

class Log:
    def debug(self, m): pass
    info = warning = error = debug

listed = []
real_list = libnft.Nft.list
libnft.Nft.list = lambda self, what: listed.append(what) or real_list(self, what)
pool = libnft.ContextPool()  # as hotplugd lends it to each request
settings = FirewallSettings(backend="nft")
vifs = {d: VifFirewall(dev=f"vif{d}.0", kind="bridge", mac=f"00:16:3e:00:00:0{d}", ips=(f"10.9.0.{d}",),
                       bridge="xenbr0") for d in (1, 2)}
st = os.stat("/proc/thread-self/ns/net")

def handles(chain):
    return sorted(pool._jumps.get(((st.st_dev, st.st_ino), "FORWARD", chain), []))

def as_hotplugd(plugging, d):
    with serving(Request(time.monotonic() + 30, warm=pool)):
        update_vif_rules(vifs[d], plugging, settings, Log())

for d in (1, 2):
    as_hotplugd(True, d)
out = {"noted": {d: handles(f"xs-vif{d}.0") for d in (1, 2)},
       "head": head_jumps(netlink_socket(), "ip", "filter", "FORWARD", "xs-vif1.0", 2),
       "jumps_1_to_2": [rule_jumps(netlink_socket(), "ip", "filter", "FORWARD", h, "xs-vif2.0")
                        for h in handles("xs-vif1.0")]}
step = sys.argv[1]
if step == "recycle":  # the table made again, and an admin's rules on the handles noted for vif1.0
    subprocess.run(["nft", "flush", "ruleset"], check=True)
    top = max(out["noted"][1])
    n = 0
    while True:
        n += 1
        subprocess.run(["iptables-nft", "-A", "FORWARD", "-s", f"192.0.2.{n}", "-j", "ACCEPT"], check=True)
        got = subprocess.run(["nft", "-j", "-a", "list", "chain", "ip", "filter", "FORWARD"], check=True,
                             capture_output=True, text=True).stdout
        if max(o["rule"]["handle"] for o in json.loads(got)["nftables"] if "rule" in o) >= top:
            break
    out["admin_rules"] = n
listed.clear()
as_hotplugd(False, 1)
out["listed"] = listed
print(json.dumps(out))
"""


def _probe(simhost, step: str) -> dict:
    cp = subprocess.run(["ip", "netns", "exec", simhost.dom0, sys.executable, "-c", PROBE, step], cwd=REPO,
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def _forward(simhost) -> list[str]:
    save = simhost.sh(simhost.dom0, "iptables-nft-save", "-t", "filter").stdout
    return [line for line in save.splitlines() if line.startswith("-A FORWARD")]


def test_offline_deletes_the_noted_jumps_without_listing_forward(simhost):
    out = _probe(simhost, "plain")
    assert len(out["noted"]["1"]) == 2 and len(out["noted"]["2"]) == 2
    assert sorted(out["head"]) == out["noted"]["1"]
    assert out["jumps_1_to_2"] == [False, False]  # a handle is checked against the target it jumps to
    assert "chain ip filter FORWARD" not in out["listed"]
    rules = _forward(simhost)  # the independent observer: iptables-nft-save
    assert not [r for r in rules if "vif1.0" in r]
    assert len([r for r in rules if "vif2.0" in r]) == 2


def test_a_recycled_handle_is_not_deleted(simhost):
    out = _probe(simhost, "recycle")
    rules = _forward(simhost)
    assert len([r for r in rules if "192.0.2." in r]) == out["admin_rules"] >= 1  # every admin rule stayed
    assert "chain ip filter FORWARD" in out["listed"]  # the noted handles failed the check: it listed
