"""The DHCP servers' file edits: exact host matches, one subnet line, whole-word interfaces, atomic writes."""

from __future__ import annotations

import os

import pytest

from xenscripts.core.errors import HotplugError, InputError
from xenscripts.core.files import write_file_atomically
from xenscripts.dhcp import DhcpHost, dhcp_mode
from xenscripts.dhcp.dnsmasq import DnsmasqFiles, read_hosts, update_host
from xenscripts.dhcp.isc import resolv_conf, with_host, with_interface, with_subnet

DOM1 = DhcpHost(hostname="dom1", mac="00:16:3e:00:01:00", address="10.0.1.1", router="10.0.1.128")
DOM10_LINE = "host dom10 { hardware ethernet 00:16:3e:00:0a:00; fixed-address 10.0.10.1; }"


def test_isc_host_entry_is_matched_exactly():
    text = f"ddns-update-style none;\n{DOM10_LINE}\n"
    added = with_host(text, DOM1, True)
    assert added == text + ('host dom1 { hardware ethernet 00:16:3e:00:01:00; fixed-address 10.0.1.1; '
                            'option routers 10.0.1.128; option host-name "dom1"; }\n')
    assert with_host(added, DOM1, True) == added
    assert with_host(added, DOM1, False) == text


def test_isc_subnet_line_once():
    text = "# mine\n"
    added = with_subnet(text, True, "example.org", "192.0.2.53")
    assert added == text + ('subnet 10.0.0.0 netmask 255.255.0.0 { option domain-name "example.org"; '
                            'option domain-name-servers 192.0.2.53; }\n')
    assert with_subnet(added, True, None, None) == added
    assert with_subnet(added, False, None, None) == text
    assert with_subnet("subnet 10.0.0.0 netmask 255.255.255.0 { }\n", False, None, None) == \
        "subnet 10.0.0.0 netmask 255.255.255.0 { }\n"


@pytest.mark.parametrize(("before", "after"), [
    ('INTERFACESv4=""\n', 'INTERFACESv4="vif1.1"\n'),
    ('INTERFACES="eth1 vif1.10"\n', 'INTERFACES="eth1 vif1.10 vif1.1"\n'),
    ('DHCPDARGS="eth1"\n', 'DHCPDARGS="eth1 vif1.1"\n'),
])
def test_isc_interfaces_whole_words(before, after):
    assert with_interface(before, "vif1.1", True) == after
    assert with_interface(after, "vif1.1", True) == after
    assert with_interface(after, "vif1.1", False) == before


def test_isc_interfaces_two_unquoted_words_get_quoted():
    assert with_interface("DHCPDARGS=eth1\n", "vif1.1", True) == 'DHCPDARGS="eth1 vif1.1"\n'


@pytest.mark.parametrize("name", ["$(reboot)", "`id`", "a;b", 'a"b', "a b", "a'b", "a\\b"])
def test_a_link_name_a_shell_would_run_never_reaches_the_args_file(name):
    with pytest.raises(InputError, match="arguments file"):
        with_interface('INTERFACES=""\n', name, True)


@pytest.mark.parametrize("host", [
    DhcpHost(hostname='dom1"; } host x {', mac="00:16:3e:00:01:00", address="10.0.1.1", router="10.0.1.128"),
    DhcpHost(hostname="dom1", mac="00:16:3e:00:01:00", address="10.0.1.1,evil", router="10.0.1.128"),
    DhcpHost(hostname="dom1", mac="00:16:3e:00:01:00\n", address="10.0.1.1", router="10.0.1.128"),
])
def test_a_host_value_that_would_break_the_files_syntax_is_refused(host, tmp_path):
    with pytest.raises(InputError):
        with_host("", host, True)
    with pytest.raises(InputError):
        update_host(DnsmasqFiles.under(str(tmp_path)), host, True, lambda _m: None)


def test_resolv_conf_values_that_would_break_dhcpd_conf_are_left_out(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text('search ok.example evil";}subnet\nnameserver 192.0.2.1;\n')
    assert resolv_conf(str(path)) == (None, None)


def test_resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("search a.example b.example\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n")
    assert resolv_conf(str(path)) == ("b.example", "192.0.2.1")


def test_atomic_write_follows_symlink(tmp_path):
    target = tmp_path / "real.conf"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    link = tmp_path / "dhcpd.conf"
    link.symlink_to(target)
    write_file_atomically(str(link), "new\n", 0o600)
    assert link.is_symlink() and target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".xenscripts-")] == []


def test_atomic_write_failure_is_clear():
    with pytest.raises(HotplugError, match="Cannot write /proc/version: "):
        write_file_atomically("/proc/version", "x")


def test_dnsmasq_hosts_exact_and_idempotent(tmp_path):
    files = DnsmasqFiles.under(str(tmp_path))
    dom10 = DhcpHost(hostname="dom10", mac="00:16:3e:00:0a:00", address="10.0.10.1", router="10.0.10.128")
    assert update_host(files, dom10, True, lambda _: None)
    assert update_host(files, DOM1, True, lambda _: None)
    assert not update_host(files, DOM1, True, lambda _: None)
    assert update_host(files, DOM1, False, lambda _: None)
    assert read_hosts(files) == ["00:16:3e:00:0a:00,10.0.10.1,dom10,infinite"]


def test_dhcp_mode():
    assert [dhcp_mode({}), dhcp_mode({"dhcp": "yes"}), dhcp_mode({"dhcp": "isc"})] == ["no", "yes", "isc"]
    with pytest.raises(InputError):
        dhcp_mode({"dhcp": "maybe"})
