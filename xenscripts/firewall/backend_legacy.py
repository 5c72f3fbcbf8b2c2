"""Legacy xtables host: per-vif chains in ``filter`` (IPv4, IPv6) and in arptables, converged from what is there.

Each table is read (``iptables-legacy-save``), compared with what the vif
needs, and changed by one atomic ``--noflush`` batch only where it differs,
so a second online sends nothing and a changed ``ip``/``mac`` replaces the
vif's rules exactly. A legacy table that is not loaded is never loaded just
to find it empty.
"""

from __future__ import annotations

import re

from ..core.errors import HotplugError
from .detect import table_names_listed
from .interface import UPSTREAM_FAILURE, ArpExecutor, Finish, Log, VifFirewall, VifRules, XtExecutor
from .model import XtRule, XtTable
from .plan import (
    arp_jumps,
    arp_rules,
    compat_chain,
    legacy_vif_tables,
    network_nat_rules,
    spoof_chain,
)
from .xtstate import batch, changes, network_bridge_changes, parse_save

_ARP_HOOKS = ("INPUT", "FORWARD")
_RULE_LINE = re.compile(r"^(\d+)\s+(.*?)\s*$")


class LegacyBackend:
    """The FirewallBackend of legacy xtables hosts (IPv4/IPv6 through *xt*, ARP through *arp*)."""

    name = "legacy"

    def __init__(self, xt: XtExecutor, arp: ArpExecutor, loaded=table_names_listed) -> None:
        self.xt, self.arp, self.loaded = xt, arp, loaded

    # ---------------------------------------------------------------- vifs
    def plug_vif(self, rules: VifRules, before: VifRules | None, log: Log,
                 pending: list[Finish] | None = None) -> None:
        """IPv4 (antispoof jumps before compat), IPv6, then ARP; compat failures only logged."""
        vif = rules.vif
        tables = legacy_vif_tables(vif.kind, vif.dev, vif.mac, vif.ips, compat=True, antispoof=rules.antispoof)
        v4 = next((t for t in tables if not t.ipv6), XtTable())
        v6 = next((t for t in tables if t.ipv6), XtTable(ipv6=True))
        try:
            self._converge(v4, _owned(vif.dev))
        except HotplugError as e:
            if rules.antispoof:
                raise
            log.debug(str(e))
            log.error(UPSTREAM_FAILURE)
            return
        self._converge(v6, {spoof_chain(vif.dev)})
        if rules.antispoof:
            assert vif.mac is not None
            self._converge_arp(vif, arp_rules(vif.dev, vif.mac, vif.ips),
                               arp_jumps(vif.kind, vif.dev, vif.mac), fresh=before != rules)
        else:
            self._converge_arp(vif, [], [], fresh=True)

    def unplug_vif(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """Every chain of the vif and every jump to it, in each legacy table this namespace has."""
        changed = self._converge(XtTable(), _owned(vif.dev))
        changed |= self._converge(XtTable(ipv6=True), {spoof_chain(vif.dev)})
        changed |= self._converge_arp(vif, [], [], fresh=True)
        if changed:
            log.debug(f"firewall: rules of {vif.dev} removed")
        return changed

    def missing(self, rules: VifRules) -> list[str]:
        vif = rules.vif
        out = []
        for table in legacy_vif_tables(vif.kind, vif.dev, vif.mac, vif.ips, compat=True,
                                       antispoof=rules.antispoof):
            owned = {spoof_chain(vif.dev)} if table.ipv6 else _owned(vif.dev)
            if changes(self._state(table), table, owned):
                out.append(f"{'ip6tables' if table.ipv6 else 'iptables'} filter: rules of {vif.dev}")
        if rules.antispoof and self.arp.listing(spoof_chain(vif.dev)) is None:
            out.append(f"arptables: chain {spoof_chain(vif.dev)}")
        return out

    # ---------------------------------------------------------------- networks
    def update_network(self, kind: str, netdev: str, starting: bool, log: Log,
                       restore_policy: str | None = None) -> str | None:
        """network-nat's MASQUERADE, or network-bridge's FORWARD policy and port chain."""
        if kind == "nat":
            nat = network_nat_rules(netdev)
            self._converge(nat if starting else XtTable(table="nat"), set(), tuple(nat.appends))
            return None
        lines, before = network_bridge_changes(self._state(XtTable()), netdev, starting, restore_policy)
        self._send(XtTable(), lines)
        return before

    # ---------------------------------------------------------------- the work
    def _state(self, table: XtTable):
        return parse_save(self.xt.save(table.table, table.ipv6), table.table)

    def _converge(self, want: XtTable, owned: set[str], owned_rules: tuple[XtRule, ...] = ()) -> bool:
        """Make the table hold *want* for what we own; True when a batch was sent."""
        names = "ip6_tables_names" if want.ipv6 else "ip_tables_names"
        if not want and not self.loaded(names):
            return False  # nothing wanted, and a table not loaded holds nothing of ours
        return self._send(want, changes(self._state(want), want, owned, owned_rules))

    def _send(self, table: XtTable, lines: list[str]) -> bool:
        if not lines:
            return False
        self.xt.restore(batch(table.table, lines), table.ipv6)()
        return True

    def _converge_arp(self, vif: VifFirewall, rules: list[tuple[str, ...]], jumps: list[tuple[str, ...]],
                      fresh: bool) -> bool:
        """The vif's ARP chain and its jumps: refilled when *fresh* or not as wanted, removed when unwanted."""
        if not rules and not self.loaded("arp_tables_names"):
            return False
        chain = spoof_chain(vif.dev)
        with self.arp.locked():
            listing = self.arp.listing(chain)
            hooked = {hook: _jump_numbers(self.arp.listing(hook) or "", chain) for hook in _ARP_HOOKS}
            if rules and listing is not None and not fresh and len(_numbered(listing)) == len(rules) \
                    and all(len(hooked[h]) == sum(j[0] == h for j in jumps) for h in _ARP_HOOKS):
                return False
            if not rules and listing is None and not any(hooked.values()):
                return False
            commands: list[tuple[str, ...]] = [("-D", hook, str(n)) for hook in _ARP_HOOKS for n in sorted(hooked[hook], reverse=True)]
            if rules:
                commands.append(("-F", chain) if listing is not None else ("-N", chain))
                commands += rules
                commands += [("-I", *jump) for jump in reversed(jumps)]
            elif listing is not None:
                commands += [("-F", chain), ("-X", chain)]
            self.arp.run(commands)
        return True


def _owned(dev: str) -> set[str]:
    return {spoof_chain(dev), compat_chain(dev)}


def _numbered(listing: str) -> list[tuple[int, str]]:
    """The rules of an ``arptables -L --line-numbers`` listing: (number, text)."""
    found = (_RULE_LINE.match(line) for line in listing.splitlines())
    return [(int(m.group(1)), m.group(2)) for m in found if m]


def _jump_numbers(listing: str, chain: str) -> list[int]:
    """Line numbers of the rules jumping to *chain* (arptables-legacy has no -C nor -S)."""
    return [n for n, text in _numbered(listing) if text.split()[:2] == ["-j", chain]]
