"""Legacy xtables host: upstream's compat chains in iptables-legacy, converged from what is there; antispoof in nft.

Each table is read (``iptables-legacy-save``), compared with what the vif
needs, and changed by one atomic ``--noflush`` batch only where it differs,
so a second online sends nothing and a changed ``ip`` replaces the vif's
rules exactly. A legacy table that is not loaded is never loaded just to
find it empty. Antispoof is ``antispoof``'s nft tables, as on an nft host:
nothing in xtables sees a bridged frame before the bridge learns from it.
"""

from __future__ import annotations

from ..core.errors import HotplugError
from .antispoof import Antispoof
from .detect import table_names_listed
from .interface import UPSTREAM_FAILURE, Finish, Log, NftExecutor, VifFirewall, VifRules, XtExecutor
from .model import XtRule, XtTable
from .plan import compat_chain, compat_rules, network_nat_rules
from .xtstate import batch, changes, network_bridge_changes, parse_save


class LegacyBackend:
    """The FirewallBackend of legacy xtables hosts (compat through *xt*, antispoof through *nft*)."""

    name = "legacy"

    def __init__(self, xt: XtExecutor, nft: NftExecutor, loaded=table_names_listed) -> None:
        self.xt, self.loaded = xt, loaded
        self.antispoof = Antispoof(nft)

    # ---------------------------------------------------------------- vifs
    def plug_vif(self, rules: VifRules, before: VifRules | None, log: Log,
                 pending: list[Finish] | None = None) -> None:
        """Antispoof first (fatal on failure: refused without nf_tables), then compat (failures only logged)."""
        vif = rules.vif
        if rules.antispoof:
            self.antispoof.plug(rules, before, log, "legacy")
        else:
            self._drop_antispoof(vif, before, log)
        try:
            self._converge(compat_rules(vif.kind, vif.dev, vif.ips), {compat_chain(vif.dev)})
        except HotplugError as e:
            log.debug(str(e))
            log.error(UPSTREAM_FAILURE)

    def unplug_vif(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """The vif's compat chain and every jump to it, and its antispoof elements."""
        changed = self._converge(XtTable(), {compat_chain(vif.dev)})
        changed |= self._drop_antispoof(vif, before, log)
        if changed:
            log.debug(f"firewall: rules of {vif.dev} removed")
        return changed

    def missing(self, rules: VifRules) -> list[str]:
        vif = rules.vif
        out = self.antispoof.missing(rules) if rules.antispoof else []
        table = compat_rules(vif.kind, vif.dev, vif.ips)
        if changes(self._state(table), table, {compat_chain(vif.dev)}):
            out.append(f"iptables-legacy filter: chain {compat_chain(vif.dev)} and its jumps")
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
    def _drop_antispoof(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """The vif's elements out of our nft tables; a host without a usable nf_tables has none."""
        try:
            return self.antispoof.unplug(vif, before)
        except HotplugError as e:
            if before is not None and before.antispoof:
                raise
            log.debug(f"firewall: no antispoof elements of {vif.dev} to remove ({e})")
            return False

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
