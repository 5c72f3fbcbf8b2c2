"""State that cannot drift, through the real firewall layer on the recorder's model of a host (no root).

``update_vif_rules`` and ``update_network_rules`` run as the scripts run them,
with a per-vif record in a temporary state directory; the backends are the real
ones, their executors the recorder (``tests/unit/fwrecord``), so what the
"kernel" holds is read from the model, never from the code under test.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.unit.fwrecord import BACKENDS, Host
from tests.unit.fwrecord import LogLines as Log
from xenscripts.firewall import FirewallSettings, VifFirewall, record, update_network_rules, update_vif_rules
from xenscripts.firewall.plan import compat_chain, network_chain


@pytest.fixture(autouse=True)
def no_conntrack(monkeypatch):
    """The layer's conntrack flush would talk to this machine's own namespace: not here."""
    import xenscripts.firewall as layer

    monkeypatch.setattr(layer, "forget_connections", lambda vif, log: None)


def opener_on(host: Host, used: list[str] | None = None):
    """The firewall layer's opener, giving the real backend *name* over the recorder's *host*."""
    @contextlib.contextmanager
    def opener(name: str, settings: FirewallSettings):
        if used is not None:
            used.append(name)
        yield BACKENDS[name](host)
    return opener


def held(host: Host) -> str:
    """Everything the model holds: nft elements and xtables rules, one per line."""
    lines = [f"{f} {s} {k}" for (f, s), keys in sorted(host.elements.items()) for k in sorted(keys)]
    for (variant, table, _v6), t in sorted(host.xt.items()):
        lines += [f"{variant} {table} {chain}: {' '.join(spec)}" for chain, rules in t["rules"].items()
                  for _h, spec in rules]
    return "\n".join(lines)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_reonline_with_another_ip_and_mac_replaces_the_allowances_exactly(backend, tmp_path):
    """A second online with changed ``ip``/``mac`` (or a vif name reused after a missed offline) leaves
    exactly the new allowances: the same as a first online of the new values on a clean host."""
    settings = FirewallSettings(backend=backend, antispoof=True, state_dir=str(tmp_path))
    old = VifFirewall("vif1.0", "bridge", "00:16:3e:00:01:00", ("10.1.0.11", "2001:db8::11"))
    new = VifFirewall("vif1.0", "bridge", "00:16:3e:00:01:99", ("10.1.0.77",))
    host, log = Host(), Log()
    update_vif_rules(old, True, settings, log, opener=opener_on(host))
    update_vif_rules(new, True, settings, log, opener=opener_on(host))
    clean = Host()
    update_vif_rules(new, True, FirewallSettings(backend=backend, antispoof=True), log, opener=opener_on(clean))
    assert held(host) == held(clean)
    assert not [w for w in ("00:16:3e:00:01:00", "0x00163e000100", "10.1.0.11", "2001:db8::11") if w in held(host)]
    assert record.load(str(tmp_path), "vif1.0") == (backend, record.VifRules(new, True, False))


@pytest.mark.parametrize(("online", "offline"), [("nft", "legacy"), ("legacy", "nft"), ("nft", "none"),
                                                 ("legacy", "auto")])
def test_offline_removes_with_the_backend_online_used(online, offline, tmp_path):
    """The record, not the offline's setting (nor a fresh ``auto`` guess), picks the backend that removes."""
    vif = VifFirewall("vif1.0", "bridge", "00:16:3e:00:01:00", ("10.1.0.11",))
    host, log, used = Host(), Log(), []
    update_vif_rules(vif, True, FirewallSettings(backend=online, antispoof=True, state_dir=str(tmp_path)), log,
                     opener=opener_on(host))
    assert "vif1.0" in held(host)
    update_vif_rules(vif, False, FirewallSettings(backend=offline, state_dir=str(tmp_path)), log,
                     opener=opener_on(host, used))
    assert used == [online]
    assert "vif1.0" not in held(host)
    assert record.load(str(tmp_path), "vif1.0") is None


def test_without_a_record_offline_with_another_backend_would_leave_the_rules():
    """The control of the test above: the model does keep what the other backend cannot see."""
    vif = VifFirewall("vif1.0", "bridge", "00:16:3e:00:01:00", ("10.1.0.11",))
    host, log = Host(), Log()
    update_vif_rules(vif, True, FirewallSettings(backend="nft", antispoof=True), log, opener=opener_on(host))
    update_vif_rules(vif, False, FirewallSettings(backend="legacy"), log, opener=opener_on(host))
    assert f"nft filter {compat_chain('vif1.0')}" in held(host)


@pytest.mark.parametrize("before", ["DROP", "ACCEPT"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_network_bridge_stop_puts_back_the_forward_policy_in_force_before_start(backend, before, tmp_path):
    host, log = Host(), Log()
    variant = "nft" if backend == "nft" else "legacy"
    host.table(variant, "filter", False)["policies"]["FORWARD"] = before
    settings = FirewallSettings(backend=backend, antispoof=True, state_dir=str(tmp_path))
    for _ in range(2):  # a second start remembers nothing new (DROP is ours by then)
        update_network_rules("bridge", "peth0", "xenbr0", True, settings, log, opener=opener_on(host))
        assert host.table(variant, "filter", False)["policies"]["FORWARD"] == "DROP"
    update_network_rules("bridge", "peth0", "xenbr0", False, settings, log, opener=opener_on(host))
    assert host.table(variant, "filter", False)["policies"]["FORWARD"] == before
    assert "peth0" not in held(host)
    assert record.forward_policy(str(tmp_path)) is None


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_names_cannot_collide(backend, tmp_path):
    """A vif named like a network's chain (``net-eth0``, ``xsnet-eth0``) or like the policy record
    (``forward-policy``) keeps its own chain and record; each goes with its own offline or stop."""
    settings = FirewallSettings(backend=backend, antispoof=True, state_dir=str(tmp_path))
    host, log = Host(), Log()
    vifs = [VifFirewall(name, "bridge", "00:16:3e:00:01:00", ("10.1.0.11",))
            for name in ("net-eth0", "xsnet-eth0", "forward-policy")]
    for vif in vifs:
        update_vif_rules(vif, True, settings, log, opener=opener_on(host))
    update_network_rules("bridge", "eth0", "xenbr0", True, settings, log, opener=opener_on(host))
    chains = {compat_chain(v.dev) for v in vifs} | {network_chain("eth0")}
    variant = "nft" if backend == "nft" else "legacy"
    assert chains <= set(host.table(variant, "filter", False)["rules"])
    assert len(chains) == 4
    assert sorted(r[1].vif.dev for r in record.remembered(str(tmp_path))) == sorted(v.dev for v in vifs)
    assert record.forward_policy(str(tmp_path)) == "ACCEPT"
    for vif in vifs:
        update_vif_rules(vif, False, settings, log, opener=opener_on(host))
        assert network_chain("eth0") in host.table(variant, "filter", False)["rules"]
    assert record.forward_policy(str(tmp_path)) == "ACCEPT"
    update_network_rules("bridge", "eth0", "xenbr0", False, settings, log, opener=opener_on(host))
    assert held(host) == ""


@pytest.mark.parametrize("kind", ["bridge", "route"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_flushed_table_is_named_missing_and_a_reonline_writes_it_whole(backend, kind, tmp_path):
    """``nft flush table``: the elements stay, the rules go. ``missing`` names the chains; the re-online
    ``xenscripts check --fix`` runs writes the table whole again; then nothing is missing and a third online
    sends nothing."""
    from xenscripts.firewall.nft import SCAFFOLDS

    host, log = Host(), Log()
    vif = VifFirewall("vif1.0", kind, "00:16:3e:00:01:00", ("10.1.0.11",))
    settings = FirewallSettings(backend=backend, antispoof=True, state_dir=str(tmp_path))
    update_vif_rules(vif, True, settings, log, opener=opener_on(host))
    rules = record.load(str(tmp_path), "vif1.0")[1]
    family = "bridge" if kind == "bridge" else "inet"
    fw = BACKENDS[backend](host)
    assert fw.missing(rules) == []
    host.take()
    host.flush_table(family)
    missing = fw.missing(rules)
    assert missing and all(f"nft chain {family} xenscripts " in m for m in missing), missing
    update_vif_rules(vif, True, settings, log, opener=opener_on(host))
    assert host.take() == [f"nft -f nft-table-{family}.nft"]
    assert any("written whole again" in line for line in log.lines)
    assert fw.missing(rules) == []
    update_vif_rules(vif, True, settings, log, opener=opener_on(host))
    assert host.take() == []
    assert SCAFFOLDS[family].count("flush chain") == len([k for k in host.nft_chains if k[0] == family])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_restore_never_puts_back_what_an_offline_took_away(backend, tmp_path):
    """hotplugd's restore looks at every record, then restores each under its lock, only if the record is
    still the one it looked at: a vif whose offline ended in between stays gone."""
    from xenscripts.firewall import restore_protection

    settings = FirewallSettings(backend=backend, antispoof=True, state_dir=str(tmp_path))
    host, log = Host(), Log()
    a = VifFirewall("vif1.0", "bridge", "00:16:3e:00:01:00", ("10.1.0.11",))
    b = VifFirewall("vif2.0", "bridge", "00:16:3e:00:02:00", ("10.1.0.12",))
    for vif in (a, b):
        update_vif_rules(vif, True, settings, log, opener=opener_on(host))
    host.elements.clear()  # the elements are lost (a flushed set, say)

    @contextlib.contextmanager
    def opener(name: str, _settings: FirewallSettings):
        fw = BACKENDS[name](host)
        real = fw.missing

        def missing(rules):  # vif1.0's offline runs while the restore looks at the records
            if rules.vif.dev == "vif1.0":
                update_vif_rules(a, False, settings, log, opener=opener_on(host))
            return real(rules)
        fw.missing = missing
        yield fw

    assert restore_protection(str(tmp_path), log, opener) == ["vif2.0"]
    assert "vif2.0" in held(host) and "vif1.0" not in held(host)
