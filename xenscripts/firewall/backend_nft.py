"""nftables host: antispoof as elements of our own sets (``antispoof``), compat via iptables-nft into ``ip filter FORWARD``.

What was there comes from the vif's record (``VifRules``), so nothing per
request lists a whole set or chain; a second online only asks the kernel
whether its elements and compat chain are there, and sends nothing when they are.
"""

from __future__ import annotations

from ..core.errors import HotplugError
from .antispoof import Antispoof, gets
from .interface import UPSTREAM_FAILURE, Finish, Log, NftExecutor, VifFirewall, VifRules, XtExecutor
from .model import NftElement, XtTable
from .nft import SCAFFOLDS
from .plan import compat_chain, compat_rules, nft_nat_element
from .xtstate import batch, network_bridge_changes, parse_save


class NftBackend:
    """The FirewallBackend of nftables hosts (our tables through *nft*, compat through iptables-nft *xt*)."""

    name = "nft"

    def __init__(self, nft: NftExecutor, xt: XtExecutor) -> None:
        self.nft, self.xt = nft, xt
        self.antispoof = Antispoof(nft)

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
        self.antispoof.plug(rules, before, log, "nft")
        self._compat(rules, before, log, pending)

    def unplug_vif(self, vif: VifFirewall, before: VifRules | None, log: Log) -> bool:
        """Remove every element naming the vif and its compat chain with the jumps to it."""
        elements_gone = self.antispoof.unplug(vif, before)
        chains = self._delete_chains([compat_chain(vif.dev)])
        if elements_gone or chains:
            log.debug(f"firewall: rules of {vif.dev} removed")
        return elements_gone or chains

    def missing(self, rules: VifRules) -> list[str]:
        out = self.antispoof.missing(rules)
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
                if not self.nft.holds(gets([element])):
                    self._add_nat(element)
            elif self.nft.holds(gets([element])):
                self.nft.commit([_delete(element)])
            return None
        lines, before = network_bridge_changes(parse_save(self.xt.save("filter", False), "filter"), netdev,
                                               starting, restore_policy)
        if lines:
            self.xt.restore(batch("filter", lines), False)()
        return before

    # ---------------------------------------------------------------- the work
    def _add_nat(self, element: NftElement) -> None:
        """network-nat's element, our NAT table made first if it is missing."""
        try:
            self.nft.commit([{"add": {"element": element.json()}}])
        except HotplugError:
            try:
                self.nft.commit_text(SCAFFOLDS["ip"])
            except HotplugError:
                pass  # made by a concurrent run meanwhile
            self.nft.commit([{"add": {"element": element.json()}}])

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
                return
            if table.jumps:  # offline then deletes them by handle, with no listing of FORWARD
                self.nft.note_jumps("FORWARD", chain, len(table.jumps))

        if pending is None:
            finish()
        else:
            pending.append(finish)

    def _chain_exists(self, chain: str) -> bool:
        return any("chain" in obj for obj in self.nft.list(f"chain ip filter {chain}"))

    def _delete_chains(self, chains: list[str]) -> bool:
        """Delete the rules of ``ip filter FORWARD`` that jump to *chains*, then the chains; one transaction."""
        commands: list[dict] = [{"delete": {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD",
                                                     "handle": handle}}} for handle in self.nft.jumps("FORWARD", chains)]
        for chain in [c for c in chains if self._chain_exists(c)]:
            spec = {"family": "ip", "table": "filter", "name": chain}
            commands += [{"flush": {"chain": spec}}, {"delete": {"chain": spec}}]
        if commands:
            self.nft.commit(commands)
        return bool(commands)


def _delete(element: NftElement) -> dict:
    return {"delete": {"element": element.json()}}


def _compat_failed(error: HotplugError, log: Log) -> None:
    """Upstream carries on without its FORWARD rules when iptables fails; so do we, saying so."""
    log.debug(str(error))
    log.error(UPSTREAM_FAILURE)

