"""Runs inside the throwaway systemd container: a simulated Xen host driving the installed package.

``driver.py online`` plugs one guest through /etc/xen/scripts/vif-bridge (so the
socket activates hotplugd), ``driver.py fail`` one whose bridge does not exist,
``driver.py burst N`` plugs N at once while ``systemctl restart`` hits the service
(``driver.py burst N DEB``: while ``dpkg -i DEB`` upgrades the package over it);
each prints one JSON document of what independent tools saw (ip -j, nft, iptables-save,
xenstore, systemctl), then offlines and cleans up. The test in test_systemd.py asserts on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from xensim.host import SimHost
from xensim.routed import dhcp_lease
from xensim.xenstored import XenstoreServer

SCRIPT = "/etc/xen/scripts/vif-bridge"
WORK = "/run/xs-test"  # /run: the hardened service sees it (its /tmp is private)
HOOK_OUT = f"{WORK}/hook.out"
# the installed defaults, so in-process fallbacks and hotplugd share locks, state and log
ENV = {"XENSCRIPTS_SOCKET": "/run/xenscripts/hotplugd.sock", "XENSCRIPTS_LOCK_DIR": "/var/run/xen-hotplug",
       "XENSCRIPTS_STATE_DIR": "/run/xenscripts", "XENSCRIPTS_LOG_FILE": "/var/log/xen/xen-hotplug.log"}


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60).stdout


def observe(host: SimHost, domids: list[int]) -> dict:
    links = {link["ifname"]: link for link in json.loads(sh("ip", "-n", host.dom0, "-j", "link", "show"))}
    ruleset = sh("ip", "netns", "exec", host.dom0, "nft", "list", "ruleset")
    xtables = sh("ip", "netns", "exec", host.dom0, "iptables-save")  # compat's physdev rules, through iptables-nft
    return {
        "status": {d: host.xs.read(f"/local/domain/0/backend/vif/{d}/0/hotplug-status") for d in domids},
        "error": {d: host.xs.read(f"/local/domain/0/backend/vif/{d}/0/hotplug-error") for d in domids},
        "master": {d: links.get(f"vif{d}.0", {}).get("master") for d in domids},
        "in_ruleset": {d: f"vif{d}.0" in ruleset for d in domids},
        "in_iptables": {d: f"vif{d}.0" in xtables for d in domids},
        "service": sh("systemctl", "is-active", "xenscripts-hotplugd.service").strip(),
        "main_pid": sh("systemctl", "show", "-p", "MainPID", "--value", "xenscripts-hotplugd.service").strip(),
    }


def online(host: SimHost, domid: int) -> int:
    return host.run_hotplug([SCRIPT], domid, extra_env=ENV).returncode


def nat(host: SimHost) -> dict:
    """network-nat dhcp=yes and a vif-nat guest through hotplugd: the daemon starts dnsmasq, the guest gets a lease."""
    def network(command: str) -> int:
        cp = subprocess.run(["ip", "netns", "exec", host.dom0, "/etc/xen/scripts/network-nat", command, "dhcp=yes"],
                            env={"PATH": os.environ["PATH"], **ENV}, capture_output=True, text=True, timeout=60,
                            check=False)
        return cp.returncode

    guest = host.add_guest(1, bridge=None, script="/etc/xen/scripts/vif-nat", guest_addr="")
    out: dict = {"start": network("start")}
    out["online"] = host.run_hotplug(["/etc/xen/scripts/vif-nat"], 1, extra_env={**ENV, "dhcp": "yes"}).returncode
    out["lease"] = dhcp_lease(host, guest.ns, guest.guest_if)
    pid = Path("/run/xenscripts/dnsmasq/pid").read_text().strip() if os.path.exists("/run/xenscripts/dnsmasq/pid") else ""
    out["dnsmasq_cgroup"] = Path(f"/proc/{pid}/cgroup").read_text().strip() if pid else ""
    out["offline"] = host.run_hotplug(["/etc/xen/scripts/vif-nat"], 1, command="offline",
                                      extra_env={**ENV, "dhcp": "yes"}).returncode
    out["stop"] = network("stop")
    return out


def main(step: str, count: int, deb: str = "") -> None:
    os.makedirs(WORK, exist_ok=True)
    xs = XenstoreServer(f"{WORK}/xs.sock").start()
    host = SimHost(xs)
    out: dict = {}
    try:
        if step == "nat":
            out = nat(host)
            return
        host.add_bridge("xenbr0", uplink=True)
        domids = list(range(1, count + 1))
        for d in domids:
            host.add_guest(d, ip=host.guest_ip(d), **({"bridge": "nosuchbr"} if step == "fail" else {}))
        if step in ("online", "fail"):
            out["before"] = sh("systemctl", "is-active", "xenscripts-hotplugd.service").strip()
            out["rc"] = [online(host, 1)]
        else:  # burst: every online at once, a restart of the service in the middle of them
            rcs: dict[int, int] = {}
            threads = [threading.Thread(target=lambda d=d: rcs.__setitem__(d, online(host, d))) for d in domids]
            for i, t in enumerate(threads):
                t.start()
                if i == len(threads) // 2:
                    out["pid_before"] = sh("systemctl", "show", "-p", "MainPID", "--value",
                                           "xenscripts-hotplugd.service").strip()
                    out["restart"] = subprocess.run(["dpkg", "-i", deb] if deb else
                                                    ["systemctl", "restart", "xenscripts-hotplugd.service"],
                                                    capture_output=True, text=True, timeout=300, check=False).returncode
            for t in threads:
                t.join()
            out["rc"] = [rcs[d] for d in domids]
        out.update(observe(host, domids))
        out["offline_rc"] = [host.run_hotplug([SCRIPT], d, command="offline", extra_env=ENV).returncode
                             for d in domids]
        out["hook"] = Path(HOOK_OUT).read_text().splitlines() if os.path.exists(HOOK_OUT) else []
    finally:
        host.close()
        xs.stop()
        print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1, *sys.argv[3:4])
