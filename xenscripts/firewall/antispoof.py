"""Antispoof on both backends: a vif's elements in our nft tables (tables.py), changed in one transaction.

A bridged frame can be checked before the bridge learns its source MAC, and
before any other vif's accept, only at the bridge's own prerouting hook,
which here only nf_tables offers (iptables sees a bridged frame after
learning, through br_netfilter; this kernel has no ebtables-legacy, and
ebtables-nft is nf_tables). So a legacy host gets the same tables as an nft host and
keeps upstream's compat rules in iptables-legacy. Without a usable
nf_tables, ``antispoof=yes`` refuses to plug: never a weaker policy.

What was there comes from the vif's record (``VifRules``): stale elements
go and new ones come in one transaction, so a changed ``ip``/``mac`` never
leaves a moment without protection nor an allowance behind; a second
online only asks the kernel whether its elements are there (``get element``).
"""

from __future__ import annotations

from ..core.errors import HotplugError
from .interface import Log, NftExecutor, VifFirewall, VifRules
from .model import NftElement
from .nft import SCAFFOLDS
from .plan import nft_vif_elements
from .tables import rule_counts, table_sets

FAMILIES = ("bridge", "inet", "arp")  # our tables that hold vif elements
REFUSED = ("antispoof=yes needs the kernel's nf_tables (the nft {family} family: the only place a guest's "
           "frames are checked before the bridge learns from them), and it is not usable here: {why}. "
           "Not plugging {dev} with a weaker policy; load nf_tables or set antispoof=no.")


class Antispoof:
    """A vif's antispoof elements in our tables, through one NftExecutor."""

    def __init__(self, nft: NftExecutor) -> None:
        self.nft = nft

    def plug(self, rules: VifRules, before: VifRules | None, log: Log, host: str) -> None:
        """Make our tables hold exactly *rules*' elements (none without antispoof); HotplugError refuses."""
        want = elements(rules)
        if before is None:
            stale = self._leftovers(rules.vif.dev)  # a vif of this name we hold no record of
        else:
            stale = [_delete(e) for e in elements(before) if e not in want]
        if not stale and (not want or (before == rules and self.nft.holds(gets(want)))):
            self._repair(want, log)  # a re-online (``xenscripts check --fix``) also mends a flushed table
            return
        self._swap(stale, want)
        if want:  # on a legacy host this is the choice of the L2 mechanism: said at info level
            say = log.info if host == "legacy" else log.debug
            say(f"firewall: antispoof of {rules.vif.dev} in nft table {want[0].family} xenscripts "
                f"({host} host)" + (", may serve DHCP" if rules.dhcp_server else ""))

    def unplug(self, vif: VifFirewall, before: VifRules | None) -> bool:
        """Delete every element naming the vif (what *before* recorded, else whatever is there)."""
        doomed = [_delete(e) for e in elements(before)] if before is not None else self._leftovers(vif.dev)
        if not doomed:
            return False
        try:
            self.nft.commit(doomed)
        except HotplugError:  # some are gone already (a flushed ruleset): find what is left
            doomed = self._leftovers(vif.dev)
            if doomed:
                self.nft.commit(doomed)
        return bool(doomed)

    def missing(self, rules: VifRules) -> list[str]:
        """The elements of *rules* and the rules of our tables the kernel does not hold, as nft text."""
        want = elements(rules)
        out = [f"nft element {e.text()}" for e in want if not self.nft.holds(gets([e]))]
        for family in sorted({e.family for e in want}):
            out += [f"nft chain {family} xenscripts {chain} ({why})" for chain, why in self._damaged(family)]
        return out

    # ---------------------------------------------------------------- the work
    def _swap(self, stale: list[dict], want: list[NftElement]) -> None:
        """Stale elements out and wanted ones in, in one transaction; our tables (re)written if refused."""
        adds = [{"add": {"element": e.json()}} for e in want]
        try:
            self.nft.commit(stale + adds)
            return
        except HotplugError:
            pass  # a table is missing or older (first vif, a flushed ruleset), or a stale element is gone
        for family in sorted({e.family for e in want}):
            try:
                self.nft.commit_text(SCAFFOLDS[family])
            except HotplugError as e:
                raise HotplugError(REFUSED.format(family=family, why=e, dev=want[0].key[0])) from None
        if adds:
            try:
                self.nft.commit(adds)
            except HotplugError as e:
                raise HotplugError(REFUSED.format(family=want[0].family, why=e, dev=want[0].key[0])) from None
        for command in stale:
            try:
                self.nft.commit([command])
            except HotplugError:
                continue  # already gone

    def _damaged(self, family: str) -> list[tuple[str, str]]:
        """The chains of our *family* table that do not hold all their rules (``nft flush table``, a rule
        deleted by hand): ``(chain, what is wrong)``; one listing per chain, no set element read."""
        out = []
        for chain, count in rule_counts(family).items():
            listed = self.nft.list(f"chain {family} xenscripts {chain}")
            if not any("chain" in obj for obj in listed):
                out.append((chain, "missing"))
                continue
            held = sum("rule" in obj for obj in listed)
            if held != count:
                out.append((chain, f"{held} of its {count} rules"))
        return out

    def _repair(self, want: list[NftElement], log: Log) -> None:
        """Write whole again each of our tables *want* uses whose chains lost rules (elements are kept)."""
        for family in sorted({e.family for e in want}):
            damaged = self._damaged(family)
            if damaged:
                self.nft.commit_text(SCAFFOLDS[family])
                log.warning(f"firewall: table {family} xenscripts had lost rules "
                            f"({', '.join(f'{c}: {why}' for c, why in damaged)}); written whole again")

    def _leftovers(self, dev: str) -> list[dict]:
        """Delete commands for every element naming *dev* in our tables; only tables whose ``vifs`` has it
        are listed (a vif's elements come and go in one transaction, ``vifs`` among them)."""
        doomed = []
        for family in FAMILIES:
            if not self.nft.holds(f'get element {family} xenscripts vifs {{ "{dev}" }}'):
                continue
            for obj in self.nft.list(f"table {family} xenscripts"):
                s = obj.get("set")
                if not s or s.get("name") not in table_sets(family):
                    continue
                for elem in s.get("elem", []):
                    key = elem["elem"]["val"] if isinstance(elem, dict) and "elem" in elem else elem
                    first = key["concat"][0] if isinstance(key, dict) and "concat" in key else key
                    if first == dev:
                        doomed.append({"delete": {"element": {"family": family, "table": "xenscripts",
                                                              "name": s["name"], "elem": [key]}}})
        return doomed


def elements(rules: VifRules | None) -> list[NftElement]:
    """The elements *rules* want in our tables (none without antispoof or a MAC)."""
    mac = rules.vif.mac if rules is not None and rules.antispoof else None
    if rules is None or not mac:
        return []
    return nft_vif_elements(rules.vif.kind, rules.vif.dev, mac, rules.vif.ips, rules.dhcp_server)


def gets(elements: list[NftElement]) -> str:
    """``get element`` reads for *elements* (names quoted; the facade allows no quote in them)."""
    return "".join(f"get element {e.text()}\n" for e in elements)


def _delete(element: NftElement) -> dict:
    return {"delete": {"element": element.json()}}
