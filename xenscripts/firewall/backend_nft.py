"""nftables host: antispoof as elements of our own sets, compat via iptables-nft into ``ip filter FORWARD``.

A vif's elements change in one libnftables transaction (stale ones out, new
ones in), so a changed ``ip``/``mac`` never leaves a moment without
protection nor an allowance behind. What was there comes from the vif's
record (``VifRules``), so nothing per request lists a whole set; a second
online only asks the kernel whether its elements are there (``get element``)
and sends nothing when they are.
"""

from __future__ import annotations

from ..core.errors import HotplugError
from .interface import UPSTREAM_FAILURE, Finish, Log, NftExecutor, VifFirewall, VifRules, XtExecutor
from .model import NftElement, XtTable
from .nft import SCAFFOLDS
from .plan import (
    compat_chain,
    compat_rules,
    nft_nat_element,
    nft_vif_elements,
)
from .xtstate import batch, network_bridge_changes, parse_save

FAMILIES = ("bridge", "inet", "arp")  # our tables that hold vif elements
VIF_SETS = ("vifs", "macs", "ipv4", "ipv6")


class NftBackend:
    """The FirewallBackend of nftables hosts (our tables through *nft*, compat through iptables-nft *xt*)."""

    name = "nft"

    def __init__(self, nft: NftExecutor, xt: XtExecutor) -> None:
        self.nft, self.xt = nft, xt

    # ---------------------------------------------------------------- vifs
    def plug_vif(self, rules: VifRules, before: VifRules | None, log: Log,
                 pending: list[Finish] | None = None) -> None:
        """Antispoof elements first (atomic, fatal on failure), then upstream's compat rules (logged on failure).

        The compat batch is a child process that spends most of its time in
        the kernel's commit; with *pending*, the caller gets the wait.
        """
        degraded = getattr(self.nft, "degraded", None)
        if degraded:  # the nft command stands in for python3-nftables
            log.warning(degraded)
        want = _elements(rules)
        if before is None:
            stale = self._leftovers(rules.vif.dev)  # a vif of this name we hold no record of
        else:
            stale = [_delete(e) for e in _elements(before) if e not in want]
        if stale or (want and not (before == rules and self.nft.holds(_gets(want)))):
            self._swap(stale, want)
        self._compat(rules, before, log, pending)

    def unplug_vif(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """Remove every element naming the vif and its compat chain with the jumps to it."""
        if before is None:
            doomed = self._leftovers(vif.dev)
        else:
            doomed = [_delete(e) for e in _elements(before)]
        if doomed:
            try:
                self.nft.commit(doomed)
            except HotplugError:  # some are gone already (a flushed ruleset): find what is left
                doomed = self._leftovers(vif.dev)
                if doomed:
                    self.nft.commit(doomed)
        chains = self._delete_chains([compat_chain(vif.dev)])
        if doomed or chains:
            log.debug(f"firewall: rules of {vif.dev} removed")
        return bool(doomed or chains)

    def missing(self, rules: VifRules) -> list[str]:
        out = [f"nft element {e.text()}" for e in _elements(rules) if not self.nft.holds(_gets([e]))]
        if not self._chain_exists(compat_chain(rules.vif.dev)):
            out.append(f"iptables-nft chain filter {compat_chain(rules.vif.dev)}")
        return out

    # ---------------------------------------------------------------- networks
    def update_network(self, kind: str, netdev: str, starting: bool, log: Log,
                       restore_policy: str | None = None) -> str | None:
        """network-nat's element of ``masquerade_out``, or network-bridge's FORWARD policy and port chain."""
        if kind == "nat":
            element = nft_nat_element(netdev)
            if starting:
                if not self.nft.holds(_gets([element])):
                    self._swap([], [element])
            elif self.nft.holds(_gets([element])):
                self.nft.commit([_delete(element)])
            return None
        lines, before = network_bridge_changes(parse_save(self.xt.save("filter", False), "filter"), netdev,
                                               starting, restore_policy)
        if lines:
            self.xt.restore(batch("filter", lines), False)()
        return before

    # ---------------------------------------------------------------- the work
    def _swap(self, stale: list[dict], want: list[NftElement]) -> None:
        """Stale elements out and wanted ones in, in one transaction; our tables made if missing."""
        adds = [{"add": {"element": e.json()}} for e in want]
        try:
            self.nft.commit(stale + adds)
            return
        except HotplugError:
            pass  # a table is missing (first vif, a flushed ruleset), or a stale element is already gone
        for family in sorted({e.family for e in want}):
            try:
                self.nft.commit_text(SCAFFOLDS[family])
            except HotplugError:
                pass  # there already (or made by a concurrent run meanwhile)
        if adds:
            try:
                self.nft.commit(adds)
            except HotplugError as e:
                raise HotplugError(f"nft: cannot add the elements of {want[0].key[0]}: {e}") from None
        for command in stale:
            try:
                self.nft.commit([command])
            except HotplugError:
                continue  # already gone

    def _leftovers(self, dev: str) -> list[dict]:
        """Delete commands for every element naming *dev* in our tables; only tables whose ``vifs`` has it
        are listed (a vif's elements come and go in one transaction, ``vifs`` among them)."""
        doomed = []
        for family in FAMILIES:
            if not self.nft.holds(f'get element {family} xenscripts vifs {{ "{dev}" }}'):
                continue
            for obj in self.nft.list(f"table {family} xenscripts"):
                s = obj.get("set")
                if not s or s.get("name") not in VIF_SETS:
                    continue
                for elem in s.get("elem", []):
                    key = elem["elem"]["val"] if isinstance(elem, dict) and "elem" in elem else elem
                    first = key["concat"][0] if isinstance(key, dict) and "concat" in key else key
                    if first == dev:
                        doomed.append({"delete": {"element": {"family": family, "table": "xenscripts",
                                                              "name": s["name"], "elem": [key]}}})
        return doomed

    def _compat(self, rules: VifRules, before: VifRules | None, log: Log, pending: list[Finish] | None) -> None:
        """Upstream's FORWARD rules (iptables-nft), replaced when the vif's kind or addresses changed."""
        vif = rules.vif
        chain = compat_chain(vif.dev)
        table = compat_rules(vif.kind, vif.dev, vif.ips)
        try:
            if self._chain_exists(chain):
                if before is not None and (before.vif.kind, before.vif.ips) == (vif.kind, vif.ips):
                    return
                if before is not None and before.vif.kind == vif.kind:
                    table = XtTable(chains=table.chains)  # same jumps: refill the chain only
                else:
                    self._delete_chains([chain])
            job = self.xt.restore(table.restore_text(), False)
        except HotplugError as e:
            _compat_failed(e, log)
            return

        def finish() -> None:
            try:
                job()
            except HotplugError as e:
                _compat_failed(e, log)

        if pending is None:
            finish()
        else:
            pending.append(finish)

    def _chain_exists(self, chain: str) -> bool:
        return any("chain" in obj for obj in self.nft.list(f"chain ip filter {chain}"))

    def _delete_chains(self, chains: list[str]) -> bool:
        """Delete the rules of ``ip filter FORWARD`` that jump to *chains*, then the chains; one transaction."""
        commands = []
        for obj in self.nft.list("chain ip filter FORWARD"):
            rule = obj.get("rule")
            if rule and any(_jump_target(e) in chains for e in rule.get("expr", [])):
                commands.append({"delete": {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD",
                                                     "handle": rule["handle"]}}})
        for chain in [c for c in chains if self._chain_exists(c)]:
            spec = {"family": "ip", "table": "filter", "name": chain}
            commands += [{"flush": {"chain": spec}}, {"delete": {"chain": spec}}]
        if commands:
            self.nft.commit(commands)
        return bool(commands)


def _elements(rules: VifRules) -> list[NftElement]:
    vif = rules.vif
    if not rules.antispoof or not vif.mac:
        return []
    return nft_vif_elements(vif.kind, vif.dev, vif.mac, vif.ips)


def _delete(element: NftElement) -> dict:
    return {"delete": {"element": element.json()}}


def _gets(elements: list[NftElement]) -> str:
    """``get element`` reads for *elements* (names quoted; the facade allows no quote in them)."""
    return "".join(f"get element {e.text()}\n" for e in elements)


def _jump_target(expr: dict) -> str | None:
    for verb in ("jump", "goto"):
        if isinstance(expr, dict) and verb in expr:
            return expr[verb].get("target")
    return None


def _compat_failed(error: HotplugError, log: Log) -> None:
    """Upstream carries on without its FORWARD rules when iptables fails; so do we, saying so."""
    log.debug(str(error))
    log.error(UPSTREAM_FAILURE)

