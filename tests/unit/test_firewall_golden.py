"""Golden files of what each firewall backend sends, captured by a recorder (libvirt-style); no root.

The real backend code runs against fake executors (``tests/unit/fwrecord``)
that model the kernel's tables and record every write. A golden file holds
one scenario on one backend: what ``online`` sends on a clean host, then
what ``offline`` sends. Regenerate after an intended change with
``XENSCRIPTS_UPDATE_GOLDEN=1`` and read the diff: it is exactly what the
change does to a host's firewall. The convergence tests are neutron's
invariant: a second online (or start) sends nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.fwrecord import BACKENDS, Host
from tests.unit.fwrecord import LogLines as Log
from xenscripts.firewall.interface import VifFirewall, VifRules
from xenscripts.firewall.nft import SCAFFOLDS

GOLDEN = Path(__file__).parent / "golden" / "firewall"
MAC = "00:16:3e:00:01:00"
VIFS = {
    # scenario: (kind, dev, ips, antispoof, dhcp_server)
    "bridge-compat": ("bridge", "vif1.0", ("10.1.0.11", "10.1.5.0/24"), False, False),
    "bridge-compat-noip": ("bridge", "vif1.0", (), False, False),
    "bridge-antispoof": ("bridge", "vif1.0", ("10.1.0.11", "2001:db8::11"), True, False),
    "bridge-antispoof-noip": ("bridge", "vif1.0", (), True, False),
    "bridge-antispoof-several": ("bridge", "vif1.0", ("10.1.0.11", "10.1.0.13", "10.1.7.0/28", "2001:db8::11",
                                                      "2001:db8:1::/64"), True, False),
    "bridge-antispoof-dhcp-server": ("bridge", "vif1.0", ("10.1.0.11",), True, True),
    "route-compat": ("route", "vif2.0", ("10.1.0.12",), False, False),
    "route-antispoof": ("route", "vif2.0", ("10.1.0.12",), True, False),
    "nat-antispoof": ("nat", "vif3.0", ("10.0.3.2",), True, False),
}
NETWORKS = {"network-bridge-antispoof": ("bridge", "peth0"), "network-nat": ("nat", "eth0")}


def rules_of(scenario: str) -> VifRules:
    kind, dev, ips, antispoof, dhcp_server = VIFS[scenario]
    return VifRules(VifFirewall(dev=dev, kind=kind, mac=MAC, ips=ips), antispoof, dhcp_server)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("XENSCRIPTS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with XENSCRIPTS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


def section(title: str, sent: list[str]) -> str:
    return f"## {title}\n" + "".join(line + "\n" for line in sent)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("scenario", sorted(VIFS))
def test_vif_online_offline(scenario, backend):
    host, log = Host(), Log()
    fw, rules = BACKENDS[backend](host), rules_of(scenario)
    fw.plug_vif(rules, None, log)
    online = host.take()
    assert fw.missing(rules) == []
    fw.unplug_vif(rules.vif, rules, log)
    offline = host.take()
    assert host.names(rules.vif.dev) == [], "offline left something naming the vif"
    check(f"{scenario}.{backend}", section(f"online {rules.vif.dev}", online) +
          section(f"offline {rules.vif.dev}", offline))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("scenario", sorted(VIFS))
def test_second_online_sends_nothing(scenario, backend):
    host, log = Host(), Log()
    fw, rules = BACKENDS[backend](host), rules_of(scenario)
    fw.plug_vif(rules, None, log)
    assert host.take()
    fw.plug_vif(rules, rules, log)
    assert host.take() == []
    assert fw.unplug_vif(rules.vif, rules, log) is True
    assert host.take()
    assert fw.unplug_vif(rules.vif, None, log) is False  # offline again: already gone, nothing sent
    assert host.take() == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("scenario", sorted(NETWORKS))
def test_network_start_stop(scenario, backend):
    host, log = Host(), Log()
    fw = BACKENDS[backend](host)
    kind, netdev = NETWORKS[scenario]
    before = fw.update_network(kind, netdev, True, log)
    start = host.take()
    assert fw.update_network(kind, netdev, True, log) is None  # a re-run: no second "policy before"
    assert host.take() == [], "a second start sent something"
    fw.update_network(kind, netdev, False, log, before)
    stop = host.take()
    assert host.names(netdev) == []
    check(f"{scenario}.{backend}", section(f"start {netdev}", start) + section(f"stop {netdev}", stop))


@pytest.mark.parametrize("family", sorted(SCAFFOLDS))
def test_nft_tables(family):
    check(f"nft-table-{family}.nft", SCAFFOLDS[family])


def test_every_golden_file_is_a_scenario():
    expected = {f"{s}.{b}" for s in (*VIFS, *NETWORKS) for b in BACKENDS}
    expected |= {f"nft-table-{f}.nft" for f in SCAFFOLDS}
    assert {p.name for p in GOLDEN.iterdir()} == expected
