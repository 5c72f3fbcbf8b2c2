"""The executor's kernel lookup of one interface name in an ifname set agrees with ``nft get element``."""

from __future__ import annotations

import subprocess
import sys

from xensim.ours import REPO

PROBE = """
import sys
from xenscripts.firewall.nftnl import kernel_has_ifname
print(" ".join(str(kernel_has_ifname(f, "xenscripts", "vifs", n)) for f, n in
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
