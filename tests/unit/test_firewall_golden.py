"""Golden files of the generated firewall rules, one per scenario and backend (libvirt-style); no root.

Regenerate after an intended change with ``XENSCRIPTS_UPDATE_GOLDEN=1`` and
read the diff: it is exactly what the change does to a host's firewall.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xenscripts.firewall.describe import describe_network, describe_vif
from xenscripts.firewall.nft import SCAFFOLDS

GOLDEN = Path(__file__).parent / "golden" / "firewall"
MAC = "00:16:3e:00:01:00"
VIFS = {
    # scenario: (kind, dev, ips, antispoof)
    "bridge-compat": ("bridge", "vif1.0", ("10.1.0.11", "10.1.5.0/24"), False),
    "bridge-compat-noip": ("bridge", "vif1.0", (), False),
    "bridge-antispoof": ("bridge", "vif1.0", ("10.1.0.11", "2001:db8::11"), True),
    "bridge-antispoof-noip": ("bridge", "vif1.0", (), True),
    "route-antispoof": ("route", "vif2.0", ("10.1.0.12",), True),
}
NETWORKS = {"network-bridge-antispoof": ("bridge", "peth0"), "network-nat": ("nat", "eth0")}


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("XENSCRIPTS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with XENSCRIPTS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("backend", ["nft", "legacy"])
@pytest.mark.parametrize("scenario", sorted(VIFS))
def test_vif_rules(scenario, backend):
    kind, dev, ips, antispoof = VIFS[scenario]
    check(f"{scenario}.{backend}", describe_vif(backend, kind, dev, MAC, ips, antispoof))


@pytest.mark.parametrize("backend", ["nft", "legacy"])
@pytest.mark.parametrize("scenario", sorted(NETWORKS))
def test_network_rules(scenario, backend):
    kind, netdev = NETWORKS[scenario]
    check(f"{scenario}.{backend}", describe_network(backend, kind, netdev))


@pytest.mark.parametrize("family", sorted(SCAFFOLDS))
def test_nft_tables(family):
    check(f"nft-table-{family}.nft", SCAFFOLDS[family])


def test_every_golden_file_is_a_scenario():
    expected = {f"{s}.{b}" for s in (*VIFS, *NETWORKS) for b in ("nft", "legacy")}
    expected |= {f"nft-table-{f}.nft" for f in SCAFFOLDS}
    assert {p.name for p in GOLDEN.iterdir()} == expected
