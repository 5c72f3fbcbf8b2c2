"""Optional components: which one a host's configuration needs, and what each does when it is missing."""

from __future__ import annotations

import io

import pytest

from xenscripts.admin import components as comp
from xenscripts.admin import picture, report
from xenscripts.core.errors import MissingComponent
from xenscripts.dhcp import dnsmasq

HIDDEN = {"XENSCRIPTS_NFTABLES_BINDING": "/nonexistent/nftables/__init__.py"}


def needed(env: dict, conf: dict, auto: str = "nft") -> dict[str, str]:
    return {c.package: c.needed for c in comp.components(env, conf, auto, [])}


def test_arptables_is_no_component_antispoof_on_legacy_needs_nft():
    assert "arptables" not in needed(HIDDEN, {})
    on_legacy = needed(HIDDEN, {"antispoof": "yes", "firewall": "legacy"})
    assert on_legacy["python3-nftables"].startswith("antispoof=yes") and on_legacy["nftables"]
    assert needed(HIDDEN, {"firewall": "legacy"})["python3-nftables"] == ""  # compat alone: iptables-legacy


def test_the_nft_command_is_needed_only_without_the_binding(tmp_path):
    binding = tmp_path / "nftables" / "__init__.py"
    binding.parent.mkdir()
    binding.write_text("")
    assert needed({"XENSCRIPTS_NFTABLES_BINDING": str(binding)}, {"firewall": "nft"})["nftables"] == ""
    assert needed(HIDDEN, {"firewall": "nft"})["nftables"] == "the firewall backend is nft"


def test_a_needed_missing_component_is_a_drift_naming_the_package():
    found = [comp.Component("dnsmasq-base", "dnsmasq", False, "dhcp=yes", "network-nat dhcp=yes fails"),
             comp.Component("graphviz", "the dot renderer", False, "", "DOT text instead")]
    drifts = comp.component_drifts(found)
    assert [(d.kind, d.subject) for d in drifts] == [("component-missing", "dnsmasq-base")]
    assert "'apt-get install dnsmasq-base'" in drifts[0].detail


def test_without_dnsmasq_network_nat_is_told_the_package(tmp_path, monkeypatch):
    real = dnsmasq.dnsmasq_argv
    monkeypatch.setattr(dnsmasq, "dnsmasq_argv", lambda files, netdev: real(files, netdev, "/nonexistent/dnsmasq"))
    with pytest.raises(MissingComponent) as e:
        dnsmasq.start_dnsmasq(dnsmasq.DnsmasqFiles.under(str(tmp_path)), "eth0", lambda line: None)
    assert "Debian package dnsmasq-base" in str(e.value) and "'apt-get install dnsmasq-base'" in str(e.value)


def test_without_graphviz_show_says_so_and_prints_dot_and_a_tree(monkeypatch):
    monkeypatch.setattr(picture, "have_dot", lambda: False)
    monkeypatch.setattr(report, "status_report", lambda env: {
        "networks": {"bridges": [], "routed": []}, "nics": [], "unknown_vifs": []})
    monkeypatch.setattr(picture, "to_dot", lambda status: "digraph xen {}")
    monkeypatch.setattr(picture, "to_text", lambda status: "(no Xen network)")
    out, err = io.StringIO(), io.StringIO()
    assert report.show({}, "svg", None, out, err) == 0
    assert "apt install graphviz" in err.getvalue()
    assert out.getvalue().startswith("digraph xen {}") and "(no Xen network)" in out.getvalue()
