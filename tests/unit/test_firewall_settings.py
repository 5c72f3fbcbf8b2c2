"""Firewall settings: conf < env < argv < xenstore, validated before anything runs; the planner's pure parts."""

from __future__ import annotations

import pytest

from tests.unit.fwrecord import LogLines as Log
from tests.unit.test_context import BE, make, vif_env
from xenscripts.core.errors import InputError
from xenscripts.firewall import FirewallSettings, settings_from
from xenscripts.firewall.detect import auto_backend, legacy_tables_loaded
from xenscripts.firewall.model import NftElement, nft_json
from xenscripts.firewall.plan import link_local, networks


@pytest.mark.parametrize(("env", "argv", "nodes", "expected"), [
    ({}, [], {}, FirewallSettings("auto", False)),
    ({"firewall": "legacy"}, [], {}, FirewallSettings("legacy", False)),
    ({"firewall": "legacy"}, ["firewall=nft", "antispoof=yes"], {}, FirewallSettings("nft", True)),
    ({"antispoof": "yes"}, ["firewall=nft"], {f"{BE}/firewall": "legacy", f"{BE}/antispoof": "no"},
     FirewallSettings("legacy", False)),
    ({}, [], {f"{BE}/firewall": "none"}, FirewallSettings("none", False)),
])
def test_xenstore_wins_over_argv_over_env(env, argv, nodes, expected):
    ctx, _xs = make(["online", *argv], vif_env(**env), nodes)
    assert settings_from(ctx.variables) == expected


@pytest.mark.parametrize(("where", "value", "message"), [
    ("argv", "firewall=iptables", "Invalid firewall 'iptables'"),
    ("argv", "antispoof=maybe", "Invalid antispoof 'maybe'"),
    ("xs", "firewall=ebtables", "Invalid firewall 'ebtables'"),
    ("argv", "firewall=none antispoof=yes", "antispoof=yes needs a firewall"),
])
def test_bad_values_are_errors_naming_the_value(where, value, message):
    pairs = value.split()
    argv = pairs if where == "argv" else []
    nodes = {f"{BE}/{k}": v for k, v in (p.split("=") for p in pairs)} if where == "xs" else {}
    ctx, _xs = make(["online", *argv], vif_env(), nodes)
    with pytest.raises(InputError, match=message):
        settings_from(ctx.variables)  # the vif frame calls it straight after building the context


def test_xtables_lockfile_comes_from_the_environment():
    ctx, _xs = make(["online"], vif_env(XTABLES_LOCKFILE="/tmp/x.lock"))
    assert settings_from(ctx.variables).xtables_lock == "/tmp/x.lock"
    assert settings_from({}).xtables_lock == "/run/xtables.lock"


def test_link_local_is_eui64_of_the_mac():
    assert link_local("00:16:3e:00:01:00") == "fe80::216:3eff:fe00:100"
    assert link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"


def test_networks_split_by_version_and_deduplicate():
    ips = ("10.0.0.5", "10.0.0.5/32", "10.1.0.7/24", "2001:db8::1")
    assert networks(ips, 4) == ["10.0.0.5/32", "10.1.0.0/24"]
    assert networks(ips, 6) == ["2001:db8::1/128"]


def test_nft_elements_are_json_never_parsed_text():
    e = NftElement("bridge", "ipv4", ('vif1.0"; flush ruleset', "10.1.0.0/24"))
    elem = nft_json("add", [e])["nftables"][0]["add"]["element"]["elem"][0]
    assert elem == {"concat": ['vif1.0"; flush ruleset', {"prefix": {"addr": "10.1.0.0", "len": 24}}]}


def test_auto_detection(tmp_path):
    (tmp_path / "ip_tables_names").write_text("")
    (tmp_path / "ip6_tables_names").write_text("")
    assert not legacy_tables_loaded(str(tmp_path))
    assert auto_backend(str(tmp_path))[0] == "nft"
    (tmp_path / "ip_tables_names").write_text("filter\n")
    legacy_bin = tmp_path / "bin"
    legacy_bin.mkdir()
    (legacy_bin / "xtables-legacy-multi").write_text("#!/bin/sh\n")
    (legacy_bin / "xtables-legacy-multi").chmod(0o755)
    (legacy_bin / "iptables").symlink_to("xtables-legacy-multi")
    assert auto_backend(str(tmp_path), str(legacy_bin)) == (
        "legacy", "iptables is iptables-legacy and legacy tables are loaded")


@pytest.mark.parametrize(("content", "warned"), [("1\n", False), ("0\n", True), (None, True)])
def test_legacy_warns_when_bridged_ipv4_skips_iptables(tmp_path, monkeypatch, content, warned):
    import xenscripts.firewall as fw
    path = tmp_path / "bridge-nf-call-iptables"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(fw, "BRIDGE_NF", str(path))
    log = Log()
    fw.warn_bridge_netfilter(log)
    assert bool(log.lines) == warned
    if warned:
        assert "bridge-nf-call-iptables" in log.lines[0] and "firewall=nft" in log.lines[0]


def test_firewall_none_touches_nothing():
    from xenscripts.firewall import VifFirewall, update_vif_rules
    log = Log()
    update_vif_rules(VifFirewall("vif1.0", "bridge"), True, FirewallSettings("none"), log)
    assert log.lines == ["firewall=none: no rules for vif1.0"]


@pytest.mark.parametrize("name", ['vif1"0', "vif 1", "vif1;0", ""])
def test_names_that_could_break_a_batch_are_refused(name):
    from xenscripts.firewall import VifFirewall, update_vif_rules
    with pytest.raises(InputError):
        update_vif_rules(VifFirewall(name, "bridge"), True, FirewallSettings("nft"), Log())
