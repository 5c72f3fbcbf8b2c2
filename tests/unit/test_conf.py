"""The host configuration file: parsing, unknown keys, bad values, precedence."""

from __future__ import annotations

import pytest

from xenscripts.core.conf import ConfigError, load_config, parse_config, setting


def test_parses_keys_comments_blanks_and_quotes():
    text = "# host settings\n\nfirewall = nft\nantispoof='yes'\n  client_timeout=2.5  \nbridges=xenbr0:eth0, xenbr1:eth1\n"
    assert parse_config(text, "f") == {"firewall": "nft", "antispoof": "yes", "client_timeout": "2.5",
                                       "bridges": "xenbr0:eth0, xenbr1:eth1"}


@pytest.mark.parametrize("text, words", [
    ("firewall\n", ["f line 1", "expected key=value"]),
    ("# ok\nfirewal=nft\n", ["f line 2", "unknown key 'firewal'"]),
    ("firewall=iptables\n", ["f line 1", "'iptables'", "firewall", "auto, nft, legacy, none"]),
    ("client_timeout=20s\n", ["client_timeout", "'20s'", "seconds"]),
    ("client_timeout=60\n", ["client_timeout", "at most 35"]),
    ("log_file=relative.log\n", ["log_file", "absolute path"]),
    ("bridges=xenbr0\n", ["bridges", "'xenbr0' is not bridge:netdev"]),
    ("=x\n", ["f line 1", "expected key=value"]),
])
def test_bad_lines_name_file_line_and_value(text, words):
    with pytest.raises(ConfigError) as e:
        parse_config(text, "f")
    for word in words:
        assert word in str(e.value)


def test_missing_file_is_empty(tmp_path):
    assert load_config({"XENSCRIPTS_CONF": str(tmp_path / "none.conf")}) == {}


def test_file_is_read_from_xenscripts_conf(tmp_path):
    path = tmp_path / "x.conf"
    path.write_text("log_level=info\n")
    assert load_config({"XENSCRIPTS_CONF": str(path)}) == {"log_level": "info"}
    path.write_text("log_level=loud\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_config({"XENSCRIPTS_CONF": str(path)})


def test_setting_precedence():
    conf = {"client_timeout": "5"}
    assert setting({}, {}, "client_timeout", "20") == "20"
    assert setting({}, conf, "client_timeout", "20") == "5"
    assert setting({"XENSCRIPTS_CLIENT_TIMEOUT": "1"}, conf, "client_timeout", "20") == "1"
