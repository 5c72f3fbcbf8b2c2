"""xenscripts.core.validate: link names, MACs, ip lists and MTUs; errors name the value."""

from __future__ import annotations

import pytest

from xenscripts.core import validate
from xenscripts.core.errors import InputError


@pytest.mark.parametrize("name", [
    "vif1.0",
    "vif1.0-emu",
    "web1",
    "x",
    "a" * 15,                 # the kernel's limit: IFNAMSIZ - 1 bytes
    "é" * 7,                  # 14 bytes: non-ASCII is fine for the kernel
    "...",                    # only "." and ".." are reserved
    ".a",
    "a..b",
    "xenbr0",
])
def test_ifname_accepts(name):
    assert validate.ifname(name) == name


@pytest.mark.parametrize("name", [
    "",
    "a" * 16,
    "é" * 8,                  # 8 characters but 16 bytes
    "abcdefghijklmn" + "é",   # 15 characters, 16 bytes
    ".",
    "..",
    "a/b",
    "/",
    "a:b",
    "eth0:1",
    "a b",
    " a",
    "a\tb",
    "a\nb",
    "a\x00b",
    "a\x7fb",
    "$(touch /x)",
])
def test_ifname_rejects_and_names_the_value(name):
    with pytest.raises(InputError) as exc:
        validate.ifname(name, "bridge name")
    assert str(exc.value).startswith("Invalid bridge name")
    assert repr(name) in str(exc.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("00:16:3e:00:00:01", "00:16:3e:00:00:01"),
    ("00:16:3E:AA:bb:Cc", "00:16:3e:aa:bb:cc"),
    ("fe:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:ff"),   # locally administered, unicast
    ("02:00:00:00:00:00", "02:00:00:00:00:00"),
    ("00:00:00:00:00:00", "00:00:00:00:00:00"),
])
def test_mac_accepts_unicast(value, expected):
    assert validate.mac(value) == expected


@pytest.mark.parametrize("value", [
    "01:00:5e:00:00:01",
    "ff:ff:ff:ff:ff:ff",
    "03:16:3e:00:00:01",
    "33:33:00:00:00:01",
    "0F:00:00:00:00:00",
])
def test_mac_refuses_multicast(value):
    with pytest.raises(InputError) as exc:
        validate.mac(value, "guest MAC address")
    text = str(exc.value)
    assert "multicast" in text
    assert repr(value) in text
    assert text.startswith("Invalid guest MAC address")


@pytest.mark.parametrize("value", [
    "",
    "00:16:3e:00:00",
    "00:16:3e:00:00:01:02",
    "0:16:3e:0:0:1",
    "00-16-3e-00-00-01",
    "0016.3e00.0001",
    "zz:16:3e:00:00:01",
    "00:16:3e:00:00:01 ",
    "00:16:3e:00:00:0g",
])
def test_mac_rejects_malformed(value):
    with pytest.raises(InputError) as exc:
        validate.mac(value)
    assert repr(value) in str(exc.value)
    assert "multicast" not in str(exc.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("", []),
    ("   ", []),
    ("10.0.0.1", ["10.0.0.1"]),
    ("10.0.0.1 10.0.0.2", ["10.0.0.1", "10.0.0.2"]),
    ("  10.0.0.1\t10.0.0.2  ", ["10.0.0.1", "10.0.0.2"]),
    ("10.0.0.0/24", ["10.0.0.0/24"]),
    ("10.0.0.5/24", ["10.0.0.5/24"]),          # host bits allowed
    ("2001:db8::1 10.1.2.3", ["2001:db8::1", "10.1.2.3"]),
])
def test_ip_list_accepts(value, expected):
    assert validate.ip_list(value) == expected


@pytest.mark.parametrize(("value", "bad"), [
    ("10.0.0.256", "10.0.0.256"),
    ("foo", "foo"),
    ("10.0.0.1 bar", "bar"),
    ("10.0.0.1;rm", "10.0.0.1;rm"),
    ("10.0.0.1/33", "10.0.0.1/33"),
    ("$(id)", "$(id)"),
    ("10.0.0.1,10.0.0.2", "10.0.0.1,10.0.0.2"),
])
def test_ip_list_rejects_naming_the_item(value, bad):
    with pytest.raises(InputError) as exc:
        validate.ip_list(value, "backend/vif/1/0/ip")
    assert repr(bad) in str(exc.value)
    assert "backend/vif/1/0/ip" in str(exc.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("68", 68),
    ("1500", 1500),
    ("9000", 9000),
    ("65535", 65535),
])
def test_mtu_accepts(value, expected):
    assert validate.mtu(value) == expected


@pytest.mark.parametrize("value", [
    "67",
    "0",
    "-1",
    "65536",
    "100000",
    "",
    "abc",
    "1500.0",
    "15OO",
    "0x5dc",
    "1500 mtu",
])
def test_mtu_rejects_naming_the_value(value):
    with pytest.raises(InputError) as exc:
        validate.mtu(value, "MTU in backend/vif/1/0/mtu")
    assert repr(value) in str(exc.value)
    assert str(exc.value).startswith("Invalid MTU in backend/vif/1/0/mtu")


@pytest.mark.parametrize("value", ["1_500", "\u0661\u0665\u0660\u0660"])
def test_mtu_rejects_python_only_integer_spellings(value):
    with pytest.raises(InputError):
        validate.mtu(value)


@pytest.mark.parametrize("name", ["v\u00e0", "\u0120x"])
def test_ifname_rejects_what_the_kernel_calls_space(name):
    with pytest.raises(InputError):
        validate.ifname(name)


def test_mac_rejects_trailing_newline():
    with pytest.raises(InputError):
        validate.mac("00:16:3e:00:00:01\n")
