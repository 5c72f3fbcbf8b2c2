"""A recorder for the firewall backends: fake executors over a small model of a kernel's tables.

Each fake answers the reads a backend makes (so a second online can find
its rules there) and appends every write to one ``sent`` list, as the text
a reviewer reads: nft commands and ``iptables-restore`` batches. The model refuses what the kernel refuses (an element added
to a missing table, a deleted rule that is not there), atomically.
"""

from __future__ import annotations

import copy
import re

from xenscripts.core.errors import HotplugError
from xenscripts.firewall.interface import Finish
from xenscripts.firewall.nft_command import jumps_in


class LogLines:
    """A run's log (the firewall layer's ``Log``) that keeps every line, whatever its level."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, message: str) -> None:
        self.lines.append(message)

    info = warning = error = debug


BUILTINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
_GET = re.compile(r"get element (\w+) xenscripts (\w+) \{ (.*) \}$")


def _key_text(elem: object) -> str:
    """An element key as ``NftElement.text`` writes it: ``"vif1.0" . 10.1.0.0/24``."""
    items = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "prefix" in item:
            out.append(f"{item['prefix']['addr']}/{item['prefix']['len']}")
        elif isinstance(item, dict) and "range" in item:
            out.append("-".join(item["range"]))
        else:
            out.append(f'"{item}"' if i == 0 else str(item))
    return " . ".join(out)


class Host:
    """One fake host: our nft tables, xtables per variant; and what was sent to them."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.nft_tables: set[str] = set()
        self.nft_chains: dict[tuple[str, str], int] = {}  # (family, chain) of our tables -> how many rules
        self.elements: dict[tuple[str, str], dict[str, object]] = {}  # (family, set) -> key text -> JSON key
        self.xt: dict[tuple[str, str, bool], dict] = {}  # (variant, table, ipv6) -> {"policies", "rules"}
        self.handles = 0
        self.noted: list[tuple[str, str, int]] = []  # note_jumps calls: what a hotplugd would remember

    def table(self, variant: str, table: str, ipv6: bool) -> dict:
        key = (variant, table, ipv6)
        if key not in self.xt:
            self.xt[key] = {"policies": {c: "ACCEPT" for c in BUILTINS[table]},
                            "rules": {c: [] for c in BUILTINS[table]}}
        return self.xt[key]

    def flush_table(self, family: str) -> None:
        """``nft flush table <family> xenscripts``: every rule gone, chains and set elements kept."""
        for key in self.nft_chains:
            if key[0] == family:
                self.nft_chains[key] = 0

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent

    def names(self, dev: str) -> list[str]:
        """Everything in the model that names *dev* (empty after its offline)."""
        found = [f"{f} {s} {k}" for (f, s), keys in self.elements.items() for k in keys if f'"{dev}"' in k]
        for (variant, table, ipv6), t in self.xt.items():
            for chain, rules in t["rules"].items():
                found += [f"{variant} {table} {chain}: {' '.join(spec)}" for _h, spec in rules
                          if dev in chain or dev in spec or any(dev in w for w in spec)]
        return found


class FakeNft:
    """The NftExecutor of a fake host (``ip filter`` is the iptables-nft table the FakeXt("nft") writes)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def holds(self, script: str) -> bool:
        for line in filter(None, script.splitlines()):
            m = _GET.match(line)
            assert m, f"unexpected read {line!r}"
            family, name, key = m.groups()
            if family not in self.host.nft_tables or key not in self.host.elements.get((family, name), {}):
                return False
        return True

    def list(self, what: str) -> list[dict]:
        kind, family, table, *rest = what.split()
        if kind == "chain" and table == "xenscripts":
            if family not in self.host.nft_tables or (family, rest[0]) not in self.host.nft_chains:
                return []
            return ([{"chain": {"family": family, "table": table, "name": rest[0]}}]
                    + [{"rule": {"family": family, "chain": rest[0]}}] * self.host.nft_chains[family, rest[0]])
        if kind == "table" and table == "xenscripts":
            if family not in self.host.nft_tables:
                return []
            return [{"set": {"family": family, "table": table, "name": s, "elem": list(keys.values())}}
                    for (f, s), keys in self.host.elements.items() if f == family and keys]
        assert (kind, family, table) == ("chain", "ip", "filter"), what
        rules = self.host.table("nft", "filter", False)["rules"]
        chain = rest[0]
        if chain not in rules:
            return []
        out: list[dict] = [{"chain": {"family": "ip", "table": "filter", "name": chain}}]
        for handle, spec in rules[chain]:
            target = spec[spec.index("-j") + 1] if "-j" in spec else None
            out.append({"rule": {"family": "ip", "table": "filter", "chain": chain, "handle": handle,
                                 "expr": [{"jump": {"target": target}}] if target else []}})
        return out

    def jumps(self, chain: str, targets) -> list[int]:
        return jumps_in(self.list(f"chain ip filter {chain}"), targets)

    def note_jumps(self, chain: str, target: str, count: int) -> None:
        self.host.noted.append((chain, target, count))

    def commit(self, commands: list[dict]) -> None:
        host = self.host
        saved = (copy.deepcopy(host.elements), copy.deepcopy(host.xt))
        lines = []
        try:
            for command in commands:
                lines.append(self._apply(command))
        except HotplugError:
            host.elements, host.xt = saved
            raise
        host.sent += lines

    def _apply(self, command: dict) -> str:
        (verb, body), = command.items()
        (what, spec), = body.items()
        host = self.host
        if what == "element":
            family, name = spec["family"], spec["name"]
            (elem,) = spec["elem"]
            key = _key_text(elem)
            if family not in host.nft_tables:
                raise HotplugError(f"nft: no table {family} xenscripts")
            keys = host.elements.setdefault((family, name), {})
            if verb == "add":
                keys[key] = elem
            elif key in keys:
                del keys[key]
            else:
                raise HotplugError(f"nft: no element {key} in {name}")
            return f"{verb} element {family} xenscripts {name} {{ {key} }}"
        rules = host.table("nft", "filter", False)["rules"]
        if what == "rule":
            chain = rules.get(spec["chain"], [])
            found = [r for r in chain if r[0] == spec["handle"]]
            if not found:
                raise HotplugError("nft: no such rule")
            chain.remove(found[0])
            return f"delete rule ip filter {spec['chain']} handle {spec['handle']}"
        if spec["name"] not in rules:
            raise HotplugError(f"nft: no chain {spec['name']}")
        if verb == "flush":
            rules[spec["name"]] = []
        else:
            del rules[spec["name"]]
        return f"{verb} chain ip filter {spec['name']}"

    def commit_text(self, script: str) -> None:
        """One of our table definitions: ``create table`` (fails when there) or ``table ... {`` (``add``)."""
        first = script.splitlines()[0].split()
        if first[:2] == ["create", "table"]:
            if first[2] in self.host.nft_tables:
                raise HotplugError("nft: File exists")
        else:
            assert first[0] == "table" and first[-1] == "{", script
        self.host.nft_tables.add(first[1 if first[0] == "table" else 2])
        if first[0] == "table":  # declared, flushed, refilled: the refill's lines are each chain's rules
            chain = None
            fill = script.rsplit(f"table {first[1]} xenscripts {{\n", 1)[1]
            for line in fill.splitlines():
                if line.startswith("\tchain "):
                    chain = line.split()[1]
                    self.host.nft_chains[first[1], chain] = 0
                elif line.startswith("\t\t") and chain:
                    self.host.nft_chains[first[1], chain] += 1
        self.host.sent.append(f"nft -f nft-table-{first[1 if first[0] == 'table' else 2]}.nft")


class FakeXt:
    """The XtExecutor of a fake host: ``iptables-<variant>-save`` and ``-restore --noflush``."""

    def __init__(self, host: Host, variant: str) -> None:
        self.host, self.variant = host, variant

    def save(self, table: str, ipv6: bool) -> str:
        t = self.host.table(self.variant, table, ipv6)
        lines = [f"*{table}"]
        lines += [f":{c} {t['policies'].get(c, '-')} [0:0]" for c in t["rules"]]
        lines += [" ".join(("-A", c, *spec)) for c, rules in t["rules"].items() for _h, spec in rules]
        return "\n".join([*lines, "COMMIT"]) + "\n"

    def restore(self, batch: str, ipv6: bool) -> Finish:
        tool = f"{'ip6tables' if ipv6 else 'iptables'}-{self.variant}-restore --noflush"
        self.host.sent.append(f"# {tool}\n{batch}".rstrip("\n"))
        saved = copy.deepcopy(self.host.xt)
        try:
            self._apply(batch, ipv6)
        except HotplugError as e:
            self.host.xt = saved
            error = e

            def fail() -> None:
                raise error
            return fail
        return lambda: None

    def _apply(self, batch: str, ipv6: bool) -> None:
        t = None
        for line in batch.splitlines():
            words = line.split()
            if line.startswith("*"):
                t = self.host.table(self.variant, line[1:], ipv6)
            elif line == "COMMIT":
                t = None
            elif line.startswith(":"):
                assert t is not None
                name, policy = words[0][1:], words[1]
                if policy != "-":
                    t["policies"][name] = policy
                else:
                    t["rules"][name] = []
            else:
                assert t is not None, line
                self._command(t, words[0], words[1], tuple(words[2:]))

    def _command(self, t: dict, verb: str, chain: str, spec: tuple[str, ...]) -> None:
        rules = t["rules"]
        if chain not in rules:
            raise HotplugError(f"iptables-restore: chain {chain} does not exist")
        if "-j" in spec and spec[spec.index("-j") + 1] not in rules and spec[spec.index("-j") + 1].startswith("xs"):
            raise HotplugError(f"iptables-restore: no chain/target {spec[spec.index('-j') + 1]}")
        if verb in ("-A", "-I"):
            self.host.handles += 1
            entry = (self.host.handles, spec)
            rules[chain].append(entry) if verb == "-A" else rules[chain].insert(0, entry)
        elif verb == "-D":
            found = [r for r in rules[chain] if r[1] == spec]
            if not found:
                raise HotplugError(f"iptables-restore: -D {chain} {' '.join(spec)}: no such rule")
            rules[chain].remove(found[0])
        elif verb == "-F":
            rules[chain] = []
        elif verb == "-X":
            if rules[chain] or any(("-j" in s and s[s.index("-j") + 1] == chain) for r in rules.values()
                                   for _h, s in r):
                raise HotplugError(f"iptables-restore: -X {chain}: chain is not empty or referenced")
            del rules[chain]
        else:
            raise AssertionError(f"unexpected {verb}")

    def loaded(self, names: str) -> bool:
        ipv6 = names.startswith("ip6")
        return any(k[0] == self.variant and k[2] == ipv6 for k in self.host.xt)


def nft_backend(host: Host):
    from xenscripts.firewall.backend_nft import NftBackend
    return NftBackend(FakeNft(host), FakeXt(host, "nft"))


def legacy_backend(host: Host):
    from xenscripts.firewall.backend_legacy import LegacyBackend
    xt = FakeXt(host, "legacy")
    return LegacyBackend(xt, FakeNft(host), xt.loaded)


BACKENDS = {"nft": nft_backend, "legacy": legacy_backend}
