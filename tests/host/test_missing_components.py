"""A host without python3-nftables: the vif still comes up with the same rules, and the admin is told.

The binding is hidden with ``XENSCRIPTS_NFTABLES_BINDING`` pointing at a file
that does not exist (the loader's test seam). The scripts run in-process
(a fresh process has not loaded the binding; a warm hotplugd has), so this
module gains nothing from the daemon pass and runs in the first one only.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.host.test_firewall import lines_naming, ruleset, two_guests  # noqa: F401 - fixture
from xensim.host import SimHost
from xensim.ours import REPO, our_command

pytestmark = pytest.mark.skipif(os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon",
                                reason="in-process only: a warm hotplugd has the binding loaded")
HIDDEN = {"XENSCRIPTS_NFTABLES_BINDING": "/nonexistent/nftables/__init__.py"}


def run(host: SimHost, domid: int, command: str, *args: str, hide: bool = True):
    env = {"XENSCRIPTS_SYSLOG": "", "XTABLES_LOCKFILE": f"{host.workdir}/xtables.lock",
           "XENSCRIPTS_SOCKET": f"{host.workdir}/no-hotplugd.sock", **(HIDDEN if hide else {})}
    return host.run_hotplug(our_command("vif-bridge"), domid, command=command, extra_args=args, extra_env=env)


def read_log(host: SimHost) -> str:
    try:
        with open(host.log_file, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("antispoof", ["no", "yes"])
def test_without_the_binding_a_vif_gets_the_same_rules_and_the_log_names_the_package(two_guests, antispoof):  # noqa: F811
    host, g1, _g2 = two_guests
    cp = run(host, 1, "online", "firewall=nft", f"antispoof={antispoof}", hide=False)
    assert cp.returncode == 0, cp.stderr
    with_binding = ruleset(host)
    assert run(host, 1, "offline", "firewall=nft", hide=False).returncode == 0
    before = ruleset(host)  # our empty tables and iptables-nft's chains stay, as documented
    assert not lines_naming(before, g1.vif, g1.mac)
    assert "python3-nftables" not in read_log(host)
    cp = run(host, 1, "online", "firewall=nft", f"antispoof={antispoof}")
    assert cp.returncode == 0, cp.stderr
    assert "internal error" not in cp.stderr + read_log(host)
    assert host.xs.read("/local/domain/0/backend/vif/1/0/hotplug-status") == "connected"
    assert lines_naming(with_binding, g1.vif)
    assert sorted(ruleset(host).splitlines()) == sorted(with_binding.splitlines())  # chain order may differ
    assert "apt-get install python3-nftables" in read_log(host)
    cp = run(host, 1, "offline", "firewall=nft")
    assert cp.returncode == 0, cp.stderr
    assert sorted(ruleset(host).splitlines()) == sorted(before.splitlines())


def test_check_names_the_missing_binding_and_status_lists_it(simhost):
    host = simhost
    admin = [str(REPO / ".venv" / "bin" / "xenscripts")]
    env = {**host.env_for(1), **HIDDEN}
    conf = os.path.join(host.workdir, "xenscripts.core.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write("firewall=nft   # the host's firewall\n")
    env["XENSCRIPTS_CONF"] = conf
    cp = host.sh(host.dom0, *admin, "check", "--json", check=False, env=env)
    doc = json.loads(cp.stdout)
    assert (set(doc), doc["format"], doc["found"], doc["fixed"]) == ({"format", "drifts", "found", "fixed"}, 1,
                                                                     None, None)  # the documented layout
    drifts = doc["drifts"]
    assert all(set(d) == {"kind", "subject", "detail", "fix"} for d in drifts), drifts
    assert cp.returncode == 1
    assert any(d["kind"] == "component-missing" and d["subject"] == "python3-nftables"
               and "apt-get install python3-nftables" in d["detail"] for d in drifts), drifts
    cp = host.sh(host.dom0, *admin, "status", check=False, env=env)
    assert "python3-nftables  MISSING (the firewall backend is nft)" in cp.stdout
