"""A guest NIC's VLANs, from upstream's bridge string and libxl's ``vlan`` backend key. Pure.

Upstream's vif-openvswitch reads ``BRIDGE[.TAG][:TRUNK[:TRUNK...]]`` with
one bash regex; libxl (Xen 4.19+, xl-network-configuration(5)) writes
``vlan=10``, ``10p/20``, ``10p/100+10x4``, ``5-9u``... Both become one
VlanSpec: the PVID (untagged in and out), other untagged VLANs, and the
VLANs allowed tagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core import validate
from ..core.errors import InputError

# vif-openvswitch: ^([^.:]+)(\.([[:digit:]]+))?(:([[:digit:]]+(:[[:digit:]]+)*))?$
_BRIDGE_STRING = re.compile(r"([^.:]+)(?:\.([0-9]+))?(?::([0-9]+(?::[0-9]+)*))?")
NO_VALID_BRIDGE = "No valid bridge was specified"
VID_MIN, VID_MAX = 1, 4094
_TERM = re.compile(r"(?P<start>[0-9]+)(?:(?P<dash>-)(?P<end>[0-9]+)|\+(?P<step>[0-9]+)x(?P<count>[0-9]+))?"
                   r"(?P<flag>[pu]?)")


@dataclass(frozen=True)
class VlanSpec:
    """What a port carries: *pvid* untagged both ways, *untagged* others sent untagged, *tagged* trunked."""

    pvid: int | None = None
    untagged: tuple[int, ...] = ()
    tagged: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return self.pvid is not None or bool(self.untagged or self.tagged)

    def describe(self) -> str:
        parts = [f"pvid {self.pvid}"] if self.pvid is not None else []
        if self.untagged:
            parts.append(f"untagged {compress(self.untagged)}")
        if self.tagged:
            parts.append(f"tagged {compress(self.tagged)}")
        return ", ".join(parts) or "no VLAN"


def parse_bridge_string(value: str) -> tuple[str, int | None, tuple[int, ...]]:
    """(bridge, tag, trunks) from ``BRIDGE[.TAG][:TRUNK...]``, exactly as upstream's regex splits it.

    Anything the regex rejects is upstream's "No valid bridge was specified";
    a number OVS would refuse (tag or trunk above 4095) is an error naming it.
    """
    m = _BRIDGE_STRING.fullmatch(value)
    if not m:
        raise InputError(NO_VALID_BRIDGE)
    bridge, tag_text, trunk_text = m.groups()
    tag = _ovs_vid(tag_text, value, "tag") if tag_text is not None else None
    trunks = tuple(_ovs_vid(t, value, "trunk") for t in trunk_text.split(":")) if trunk_text else ()
    return bridge, tag, trunks


def _ovs_vid(text: str, whole: str, what: str) -> int:
    number = int(text)
    if number > 4095:
        raise InputError(f"Invalid bridge {whole!r}: VLAN {what} {number} is above 4095")
    return number


def parse_vlan_key(value: str, key: str = "vlan") -> VlanSpec:
    """libxl's ``vlan`` syntax, strictly: terms joined by ``/``, exactly one PVID.

    A term is ``N`` (``p`` = the PVID, ``u`` = untagged), ``A-B[u]`` or
    ``N+STEPxCOUNT[u]`` (N and COUNT more, STEP apart). A lone ``N`` is the
    PVID. Errors name *key* and the value; nothing is guessed.
    """
    def bad(why: str) -> InputError:
        return InputError(f"Invalid {key} {value!r}: {why}")

    if not value:
        raise bad("empty")
    terms = value.split("/")
    pvid: int | None = None
    untagged: list[int] = []
    tagged: list[int] = []
    seen: set[int] = set()
    for term in terms:
        m = _TERM.fullmatch(term)
        if not m:
            raise bad(f"{term!r} is not N, Np, Nu, A-B[u] or N+STEPxCOUNT[u]")
        start, flag = _vid(m["start"], bad), m["flag"]
        if m["dash"]:
            end = _vid(m["end"], bad)
            if end < start:
                raise bad(f"range {term!r} ends below its start")
            ids = list(range(start, end + 1))
        elif m["step"] is not None:
            step, count = int(m["step"]), int(m["count"])
            if step < 1 or count < 1:
                raise bad(f"{term!r}: step and count must be at least 1")
            ids = [start + step * i for i in range(count + 1)]
            if ids[-1] > VID_MAX:
                raise bad(f"{term!r} reaches VLAN {ids[-1]}, above {VID_MAX}")
        else:
            ids = [start]
        if flag == "p":
            if len(ids) != 1:
                raise bad(f"the PVID must be one VLAN, not {term!r}")
            if pvid is not None:
                raise bad(f"two PVIDs ({pvid} and {start})")
            pvid = start
        for vid in ids:
            if vid in seen:
                raise bad(f"VLAN {vid} is listed twice")
            seen.add(vid)
        if flag == "u":
            untagged += ids
        elif flag != "p":
            tagged += ids
    if pvid is None:
        if len(seen) == 1:
            return VlanSpec(pvid=seen.pop())  # "vlan=10": a single VLAN is the PVID
        raise bad("one VLAN must be marked as the PVID (a 'p' suffix, e.g. 10p/20)")
    return VlanSpec(pvid=pvid, untagged=tuple(sorted(untagged)), tagged=tuple(sorted(tagged)))


def _vid(text: str, bad) -> int:
    number = int(text)
    if not VID_MIN <= number <= VID_MAX:
        raise bad(f"VLAN {text} is outside {VID_MIN}-{VID_MAX}")
    return number


def compress(vids: tuple[int, ...] | list[int]) -> str:
    """``1,2,3,7`` -> ``1-3,7``: VLAN lists the way people and ``bridge vlan`` write them."""
    out: list[str] = []
    run: list[int] = []
    for vid in sorted(vids):
        if run and vid == run[-1] + 1:
            run.append(vid)
            continue
        if run:
            out.append(_span(run))
        run = [vid]
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def ovs_columns(spec: VlanSpec) -> tuple[int | None, tuple[int, ...], str | None]:
    """(tag, trunks, vlan_mode) of an OVS port carrying *spec*.

    The PVID alone: an access port (``tag``, vlan_mode left empty as upstream
    leaves it). Tagged VLANs alone: a trunk. Both: ``native-untagged``, the
    PVID untagged and the rest tagged; OVS ignores ``trunks`` on an access port,
    so upstream's ``br.10:20`` without a vlan_mode would drop the trunks.
    OVS can send only the native VLAN untagged: other untagged VLANs are refused.
    """
    if spec.untagged:
        raise InputError(f"Open vSwitch sends only the PVID untagged; cannot also untag {compress(spec.untagged)}")
    if spec.pvid is not None and spec.tagged:
        return spec.pvid, spec.tagged, "native-untagged"
    return spec.pvid, spec.tagged, None


def port_columns(raw: str, vlan: str, vlan_key: str = "vlan") -> tuple[str, int | None, tuple[int, ...],
                                                                         str | None]:
    """(bridge, tag, trunks, vlan_mode) from the bridge string and the ``vlan`` key's value (pure).

    Upstream's tag and trunks are written as given (ovs-vsctl would write them
    so), with the vlan_mode they mean; the two ways of asking for VLANs together are refused.
    """
    bridge, tag, trunks = parse_bridge_string(raw)
    validate.ifname(bridge, "bridge name")
    if tag is not None or trunks:
        if vlan:
            raise InputError(f"Both the bridge {raw!r} and {vlan_key} {vlan!r} set VLANs: use one")
        mode = "native-untagged" if tag is not None and trunks else None
        return bridge, tag, tuple(sorted(set(trunks))), mode
    if not vlan:
        return bridge, None, (), None
    spec = parse_vlan_key(vlan, vlan_key)
    try:
        tag, trunks, mode = ovs_columns(spec)
    except InputError as e:
        raise InputError(f"Invalid {vlan_key} {vlan!r}: {e}") from None
    return bridge, tag, trunks, mode
