"""The desired rules, as plain data: xtables chains and rules, nft set elements.

One model, rendered two ways: as the text a reviewer reads (golden files,
``iptables-restore`` batches, nft commands) and as what a backend applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class XtRule:
    """One xtables rule: ``-A <chain> <spec>`` in ``iptables-save`` form (``spec`` split in words)."""

    chain: str
    spec: tuple[str, ...]

    def line(self, verb: str = "-A") -> str:
        return " ".join((verb, self.chain, *self.spec))


@dataclass
class XtTable:
    """The rules of one vif (or network) in one xtables table: own chains, then jumps into built-ins."""

    table: str = "filter"
    ipv6: bool = False
    chains: dict[str, list[XtRule]] = field(default_factory=dict)
    jumps: list[XtRule] = field(default_factory=list)     # inserted at the top of a built-in chain
    appends: list[XtRule] = field(default_factory=list)   # appended to a built-in chain
    policies: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.chains or self.jumps or self.appends or self.policies)

    def restore_text(self) -> str:
        """The ``iptables-restore --noflush`` batch that installs this (chains flushed, jumps inserted)."""
        lines = [f"*{self.table}"]
        lines += [f":{chain} {policy} [0:0]" for chain, policy in self.policies.items()]
        lines += [f":{chain} - [0:0]" for chain in self.chains]
        for rules in self.chains.values():
            lines += [rule.line("-A") for rule in rules]
        # -I puts each rule at the top: insert in reverse so they end up in listed order
        lines += [rule.line("-I") for rule in reversed(self.jumps)]
        lines += [rule.line("-A") for rule in self.appends]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NftElement:
    """One element of one of our nft sets: ``(family, set, key)``; key items are joined with `` . ``."""

    family: str
    set: str
    key: tuple[str, ...]

    def text(self) -> str:
        items = [json.dumps(item) if i == 0 else item for i, item in enumerate(self.key)]
        return f"{self.family} xenscripts {self.set} {{ {' . '.join(items)} }}"

    def json(self) -> dict:
        """libnftables JSON for this element (no text parsing of names: no injection)."""
        items: list = [_json_value(item) for item in self.key]
        elem = items[0] if len(items) == 1 else {"concat": items}
        return {"family": self.family, "table": "xenscripts", "name": self.set, "elem": [elem]}


def _json_value(item: str) -> object:
    if item.startswith("0x") and "-" in item:  # an integer range (neighbour discovery targets)
        return {"range": item.split("-")}
    if "/" in item:
        addr, length = item.split("/")
        return {"prefix": {"addr": addr, "len": int(length)}}
    return item


def nft_text(verb: str, elements: list[NftElement]) -> str:
    """The nft commands (one transaction) that add or delete *elements*."""
    return "".join(f"{verb} element {e.text()}\n" for e in elements)


def nft_json(verb: str, elements: list[NftElement]) -> dict:
    """The same transaction as libnftables JSON."""
    return {"nftables": [{verb: {"element": e.json()}} for e in elements]}
