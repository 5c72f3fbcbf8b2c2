"""xtables as ``iptables-save`` shows it, and the one ``--noflush`` batch that turns it into what we want. Pure.

We own some chains (a vif's ``xs-...`` chains, a network's) and some rules
in built-in chains (the jumps to ours, network-nat's MASQUERADE). The batch
touches nothing else: it refills an owned chain only when its rules differ,
deletes owned chains and rules no longer wanted, and re-inserts a vif's
jumps (in their order) when one is missing or out of order. When the table
already is as wanted, the batch is empty and nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import XtRule, XtTable
from .plan import network_bridge_rules, network_chain

BUILTIN = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})


@dataclass
class XtState:
    """One table: each chain's policy (built-ins) and rules (as ``iptables-save`` words)."""

    policies: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


def parse_save(text: str, table: str) -> XtState:
    """The *table* section of ``iptables-save`` output."""
    state = XtState()
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif current != table or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy, *_ = line[1:].split()
            state.rules.setdefault(name, [])
            if policy != "-":
                state.policies[name] = policy
        elif line.startswith("-A "):
            words = line.split()
            state.rules.setdefault(words[1], []).append(tuple(words[2:]))
    return state


def _target(spec: tuple[str, ...]) -> str | None:
    for i, word in enumerate(spec[:-1]):
        if word in ("-j", "-g"):
            return spec[i + 1]
    return None


def changes(state: XtState, want: XtTable, owned: set[str], owned_rules: tuple[XtRule, ...] = ()) -> list[str]:
    """The batch lines (without ``*table``/``COMMIT``) that make *state* hold *want* for what we own.

    *owned*: our chain names (every jump to one is ours too); *owned_rules*:
    rules of built-in chains that are ours though they jump elsewhere (a
    MASQUERADE), removed when *want* does not have them.
    """
    lines: list[str] = []
    wanted_rules = {(r.chain, r.spec) for r in (*want.jumps, *want.appends)}
    # our rules in built-in chains, in order, per chain
    ours: dict[str, list[tuple[str, ...]]] = {}
    extra = {(r.chain, r.spec) for r in owned_rules}
    for chain, rules in state.rules.items():
        if chain in owned:
            continue
        for spec in rules:
            if _target(spec) in owned or (chain, spec) in extra:
                ours.setdefault(chain, []).append(spec)
    appended = {(a.chain, a.spec) for a in want.appends}
    jumps_now = [(c, s) for c, specs in ours.items() for s in specs if (c, s) not in appended]
    jumps_want = [(r.chain, r.spec) for r in want.jumps]
    redo_jumps = _in_order(jumps_now, jumps_want)
    # drop what is ours and not wanted (and, when they are re-inserted, every jump of ours)
    for chain, specs in ours.items():
        for spec in specs:
            if (chain, spec) not in wanted_rules or (redo_jumps and (chain, spec) in jumps_want):
                lines.append(XtRule(chain, spec).line("-D"))
    for name in sorted(owned & state.rules.keys() - want.chains.keys()):
        lines += [f"-F {name}", f"-X {name}"]
    for name, chain_rules in want.chains.items():
        if state.rules.get(name) != [r.spec for r in chain_rules]:
            lines.append(f":{name} - [0:0]")  # creates it, or flushes it (--noflush)
            lines += [r.line("-A") for r in chain_rules]
    if redo_jumps:
        lines += [r.line("-I") for r in reversed(want.jumps)]  # -I puts each on top: reversed keeps order
    present = {(c, s) for c, specs in state.rules.items() for s in specs}
    lines += [r.line("-A") for r in want.appends if (r.chain, r.spec) not in present]
    for chain, policy in want.policies.items():
        if state.policies.get(chain) != policy:
            lines.append(f":{chain} {policy} [0:0]")
    return lines


def _in_order(now: list[tuple[str, tuple[str, ...]]], want: list[tuple[str, tuple[str, ...]]]) -> bool:
    """True when the wanted jumps must be (re)inserted: one is missing, doubled or out of order in its chain."""
    for chain in {c for c, _s in want}:
        if [j for j in now if j in want and j[0] == chain] != [j for j in want if j[0] == chain]:
            return True
    return False


def batch(table: str, lines: list[str]) -> str:
    """A ``--noflush`` restore batch of *lines* ("" when there is nothing to do)."""
    return f"*{table}\n" + "".join(line + "\n" for line in lines) + "COMMIT\n" if lines else ""


def network_bridge_changes(state: XtState, netdev: str, starting: bool,
                           restore_policy: str | None) -> tuple[list[str], str | None]:
    """network-bridge antispoof=yes on ``filter``: (batch lines, a FORWARD policy).

    The policy is, on start, the one in force before our first network; on
    stop, the one put back by our last (else None).
    FORWARD's policy is the host's: one network that stops while another of
    ours is started leaves DROP in place.
    """
    chain = network_chain(netdev)
    ours = [c for c in state.rules if c.startswith(network_chain(""))]
    if starting:
        before = None if ours else state.policies.get("FORWARD", "ACCEPT")
        return changes(state, network_bridge_rules(netdev), {chain}), before
    if chain not in state.rules:
        return [], None
    if [c for c in ours if c != chain]:
        return changes(state, XtTable(), {chain}), None
    policy = restore_policy or "ACCEPT"
    return changes(state, XtTable(policies={"FORWARD": policy}), {chain}), policy
