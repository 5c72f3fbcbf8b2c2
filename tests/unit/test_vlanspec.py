"""The bridge string (upstream's regex) and libxl's vlan key, table-driven; and what OVS makes of them."""

from __future__ import annotations

import re
import subprocess

import pytest

from xenscripts.core.errors import InputError
from xenscripts.netlink.bridgevlan import ranges
from xenscripts.xen.vlanspec import (
    NO_VALID_BRIDGE,
    VlanSpec,
    compress,
    ovs_columns,
    parse_bridge_string,
    parse_vlan_key,
    port_columns,
)

BRIDGE_STRINGS = [
    ("xenbr0", ("xenbr0", None, ())),
    ("ovsbr0.10", ("ovsbr0", 10, ())),
    ("ovsbr0:20", ("ovsbr0", None, (20,))),
    ("ovsbr0:20:30:40", ("ovsbr0", None, (20, 30, 40))),
    ("ovsbr0.10:20:30", ("ovsbr0", 10, (20, 30))),
    ("ovsbr0.0", ("ovsbr0", 0, ())),
    ("br-int.4095", ("br-int", 4095, ())),
    ("a b.7", ("a b", 7, ())),  # [^.:]+ takes anything else; the name check comes later
]
NOT_BRIDGE_STRINGS = ["", ".10", "br0.", "br0.x", "br0.10.20", "br0:", "br0::20", "br0:20:", "br0:a",
                      "br0:20.10", "br0.10:", ":20", "br0.-1", "br0.+1", "br0.1 "]


@pytest.mark.parametrize(("value", "expected"), BRIDGE_STRINGS)
def test_bridge_string(value, expected):
    assert parse_bridge_string(value) == expected


@pytest.mark.parametrize("value", NOT_BRIDGE_STRINGS)
def test_not_a_bridge_string(value):
    with pytest.raises(InputError) as e:
        parse_bridge_string(value)
    assert str(e.value) == NO_VALID_BRIDGE


@pytest.mark.parametrize("value", [*(v for v, _ in BRIDGE_STRINGS), *NOT_BRIDGE_STRINGS, "br0.10:20:30:40",
                                   "x.1:2", "br0.٣"])
def test_same_split_as_bash(value):
    """Our regex agrees with upstream's own bash [[ =~ ]] on every case above."""
    script = ('if [[ $1 =~ ^([^.:]+)(\\.([[:digit:]]+))?(:([[:digit:]]+(:[[:digit:]]+)*))?$ ]]; then '
              'echo "${BASH_REMATCH[1]}|${BASH_REMATCH[3]}|${BASH_REMATCH[5]//:/,}"; else echo NO; fi')
    out = subprocess.run(["bash", "-c", script, "bash", value], capture_output=True, text=True,
                         env={"LANG": "POSIX"}, check=True).stdout.strip()
    try:
        bridge, tag, trunks = parse_bridge_string(value)
    except InputError:
        assert out == "NO"
        return
    assert out == f"{bridge}|{'' if tag is None else tag}|{','.join(map(str, trunks))}"


def test_bridge_string_numbers_ovs_refuses():
    with pytest.raises(InputError, match=r"'br0.4096'.*tag 4096 is above 4095"):
        parse_bridge_string("br0.4096")
    with pytest.raises(InputError, match=r"trunk 9999"):
        parse_bridge_string("br0:20:9999")


VLAN_KEYS = [
    ("10", VlanSpec(pvid=10)),
    ("10p", VlanSpec(pvid=10)),
    ("10u", VlanSpec(pvid=10)),
    ("4094", VlanSpec(pvid=4094)),
    ("10p/20", VlanSpec(pvid=10, tagged=(20,))),
    ("20/10p", VlanSpec(pvid=10, tagged=(20,))),
    ("10p/100+10x4", VlanSpec(pvid=10, tagged=(100, 110, 120, 130, 140))),
    ("1p/2-5", VlanSpec(pvid=1, tagged=(2, 3, 4, 5))),
    ("1p/2-5u", VlanSpec(pvid=1, untagged=(2, 3, 4, 5))),
    ("7p/8u/9", VlanSpec(pvid=7, untagged=(8,), tagged=(9,))),
    ("100p/200+1x2u", VlanSpec(pvid=100, untagged=(200, 201, 202))),
    ("5p/6-6", VlanSpec(pvid=5, tagged=(6,))),
]
BAD_VLAN_KEYS = [
    ("", "empty"),
    ("0", "outside 1-4094"),
    ("4095", "outside 1-4094"),
    ("10/20", "must be marked as the PVID"),
    ("10-12", "must be marked as the PVID"),
    ("10p/20p", "two PVIDs"),
    ("10-12p", "the PVID must be one VLAN"),
    ("10p/10", "listed twice"),
    ("10p/5-12", "listed twice"),
    ("10p/12-5", "ends below its start"),
    ("10p/100+10x0", "at least 1"),
    ("10p/100+0x3", "at least 1"),
    ("10p/4000+100x1", "reaches VLAN 4100"),
    ("10p/", "'' is not"),
    ("/10p", "'' is not"),
    ("10p,20", "is not"),
    ("10 p", "is not"),
    ("10x", "is not"),
    ("0x10", "is not"),
    ("10pu", "is not"),
    ("-5", "is not"),
    ("٣", "is not"),
]


@pytest.mark.parametrize(("value", "expected"), VLAN_KEYS)
def test_vlan_key(value, expected):
    assert parse_vlan_key(value) == expected


@pytest.mark.parametrize(("value", "why"), BAD_VLAN_KEYS)
def test_bad_vlan_key_names_key_and_value(value, why):
    key = "/local/domain/0/backend/vif/1/0/vlan"
    with pytest.raises(InputError) as e:
        parse_vlan_key(value, key)
    assert str(e.value).startswith(f"Invalid {key} {value!r}: ")
    assert why in str(e.value)


@pytest.mark.parametrize(("spec", "columns"), [
    (VlanSpec(pvid=10), (10, (), None)),
    (VlanSpec(tagged=(20, 30)), (None, (20, 30), None)),
    (VlanSpec(pvid=10, tagged=(20, 30)), (10, (20, 30), "native-untagged")),
    (VlanSpec(), (None, (), None)),
])
def test_ovs_columns(spec, columns):
    assert ovs_columns(spec) == columns


def test_ovs_cannot_untag_more_than_the_pvid():
    with pytest.raises(InputError, match=r"only the PVID untagged; cannot also untag 8-9"):
        ovs_columns(parse_vlan_key("7p/8-9u"))


@pytest.mark.parametrize(("raw", "vlan", "columns"), [
    ("ovsbr0", "", ("ovsbr0", None, (), None)),
    ("ovsbr0.10", "", ("ovsbr0", 10, (), None)),
    ("ovsbr0:30:20:30", "", ("ovsbr0", None, (20, 30), None)),
    ("ovsbr0.10:20", "", ("ovsbr0", 10, (20,), "native-untagged")),
    ("ovsbr0", "10p/100+10x1", ("ovsbr0", 10, (100, 110), "native-untagged")),
    ("ovsbr0", "20", ("ovsbr0", 20, (), None)),
])
def test_port_columns(raw, vlan, columns):
    assert port_columns(raw, vlan, "backend/vif/1/0/vlan") == columns


def test_port_columns_refuses_two_ways_of_asking():
    with pytest.raises(InputError, match=r"Both the bridge 'ovsbr0.10' and backend/vif/1/0/vlan '20' set VLANs"):
        port_columns("ovsbr0.10", "20", "backend/vif/1/0/vlan")


def test_compress_and_ranges():
    assert compress([7, 1, 2, 3, 10, 11]) == "1-3,7,10-11"
    assert ranges((1, 2, 3, 7)) == [(1, 3), (7, 7)]
    assert VlanSpec(pvid=10, tagged=(100, 101, 102)).describe() == "pvid 10, tagged 100-102"
    assert re.fullmatch("no VLAN", VlanSpec().describe())
