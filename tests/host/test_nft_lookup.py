"""The executor's kernel lookup of one interface name in an ifname set agrees with ``nft get element``."""

from __future__ import annotations

import json
import subprocess
import sys

from xensim.ours import REPO

PROBE = """
import sys
from xenscripts.firewall.nftnl import kernel_has_ifname, netlink_socket
sock = netlink_socket()
print(" ".join(str(kernel_has_ifname(sock, f, "xenscripts", "vifs", n)) for f, n in
               [("bridge", "vif1.0"), ("bridge", "vif2.0"), ("bridge", "vif1.00"), ("inet", "vif1.0")]))
"""


def test_kernel_lookup_matches_nft_get_element(simhost):
    ns = simhost.dom0
    simhost.sh(ns, "nft", "add table bridge xenscripts")
    simhost.sh(ns, "nft", "add set bridge xenscripts vifs { type ifname; }")
    simhost.sh(ns, "nft", 'add element bridge xenscripts vifs { "vif1.0" }')
    for name, there in (("vif1.0", True), ("vif2.0", False)):
        cp = simhost.sh(ns, "nft", f'get element bridge xenscripts vifs {{ "{name}" }}', check=False)
        assert (cp.returncode == 0) is there  # the independent observer agrees with the setup
    cp = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                        text=True, timeout=30, check=False)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["True", "False", "False", "False"]  # no inet table: not there either


ELEMENTS = """
import json, sys
from xenscripts.firewall.libnft import binding
nftables = binding()
from xenscripts.firewall.nft import SCAFFOLDS
from xenscripts.firewall.nftnl import element_batch, send_batch
from xenscripts.firewall.plan import nft_vif_elements
from xenscripts.firewall.tables import SETS

n = nftables.Nftables()
assert n.cmd(SCAFFOLDS["bridge"])[0] == 0
def sets():
    out = n.json_cmd({"nftables": [{"list": {"table": {"family": "bridge", "name": "xenscripts"}}}]})[1]
    return {o["set"]["name"]: sorted(json.dumps(e, sort_keys=True) for e in o["set"].get("elem", []))
            for o in out["nftables"] if "set" in o}
def cmds(verb, elements):
    return [{verb: {"element": e.json()}} for e in elements]
one = nft_vif_elements("bridge", "vif1.0", "00:16:3e:00:00:01",
                       ("10.1.0.11", "10.1.5.0/24", "fd00:1::11", "fd00:9::/64"), True)
two = nft_vif_elements("bridge", "vif2.0", "00:16:3e:00:00:02", ("10.1.0.12",))
out = {}
assert n.json_cmd({"nftables": cmds("add", one)})[0] == 0
out["libnftables"] = sets()
assert n.json_cmd({"nftables": cmds("delete", one)})[0] == 0
send_batch(element_batch(cmds("add", one), SETS))
out["raw"] = sets()
send_batch(element_batch(cmds("add", two), SETS))
send_batch(element_batch(cmds("add", one), SETS))  # again: already so, no error
send_batch(element_batch(cmds("delete", one), SETS))
out["after_delete"] = sets()
try:
    send_batch(element_batch(cmds("delete", two + one), SETS))  # vif1.0's are gone: refused, all of it
    out["refused"] = False
except OSError:
    out["refused"] = True
out["after_refusal"] = sets()
send_batch(element_batch(cmds("add", one), SETS))  # and out again as a listing gives them (decimal integers)
listed = n.json_cmd({"nftables": [{"list": {"table": {"family": "bridge", "name": "xenscripts"}}}]})[1]
back = [{"delete": {"element": {"family": "bridge", "table": "xenscripts", "name": o["set"]["name"], "elem": [e]}}}
        for o in listed["nftables"] if "set" in o for e in o["set"].get("elem", []) if "vif1.0" in json.dumps(e)]
batch = element_batch(back, SETS)
out["listed_back"] = batch is not None
send_batch(batch)
out["after_listed_delete"] = sets()
out["not_ours"] = element_batch([{"add": {"table": {"family": "bridge", "name": "x"}}}], SETS)
print(json.dumps(out))
"""


def test_element_batches_hold_what_libnftables_would_and_are_atomic(simhost):
    """Set elements sent straight to the kernel (no cache of whole interval sets) are the ones libnftables
    writes, for host addresses, prefixes and neighbour-target ranges; a refused batch changes nothing."""
    cp = subprocess.run(["ip", "netns", "exec", simhost.dom0, sys.executable, "-c", ELEMENTS], cwd=REPO,
                        capture_output=True, text=True, timeout=30, check=False)
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["raw"] == out["libnftables"] and all(out["raw"][s] for s in ("ipv4", "ipv4_hosts", "ipv6", "ipv6_hosts", "nd_targets", "nd_target_hosts"))
    left = out["after_delete"]
    assert not [e for elems in left.values() for e in elems if "vif1.0" in e]
    assert [e for e in left["ipv4_hosts"] if "vif2.0" in e]
    assert out["refused"] and out["after_refusal"] == left
    assert out["listed_back"] and out["after_listed_delete"] == left
    assert out["not_ours"] is None  # anything but our sets' elements: libnftables sends it
