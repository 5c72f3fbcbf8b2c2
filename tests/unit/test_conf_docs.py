"""The config file as admins write it, and its docs generated from the reader's key table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xenscripts.admin import confdoc
from xenscripts.core.conf import KEYS, ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARK = "# /etc/xen/xenscripts.conf"
KEY_LINE = re.compile(rf"^\s*#?\s*({'|'.join(KEYS)})\s*=")
COMMENTED_KEY = re.compile(rf"^#(?=({'|'.join(KEYS)})=)")  # '#key=value': a setting left at its default


@pytest.mark.parametrize("line, value", [
    ("firewall=auto   # auto | nft | legacy | none", "auto"),
    ("firewall=nft\t# tab before the comment", "nft"),
    ("log_file=/srv/log#1", "/srv/log#1"),
    ("log_file=/srv/log#1   # a comment after it", "/srv/log#1"),
    ("log_file=\"/srv/a #1\"   # quoted: the blank-hash stays", "/srv/a #1"),
    ("log_file='/srv/b # 2'", "/srv/b # 2"),
    ("dhcpd_restart=/usr/sbin/service isc-dhcp-server restart  # no shell", "/usr/sbin/service isc-dhcp-server restart"),
    ("  antispoof = yes  ", "yes"),
])
def test_a_hash_after_a_blank_starts_a_comment(line, value):
    key = line.split("=")[0].strip()
    assert parse_config(line + "\n", "f") == {key: value}


@pytest.mark.parametrize("line, words", [
    ("log_file=\"/srv/a   # no closing quote", ["f line 1", "no closing \""]),
    ("log_file='/srv/a' trailing", ["f line 1", "'trailing' after the closing quote"]),
    ("firewall=#auto", ["f line 1", "bad value ''", "auto, nft, legacy, none"]),
])
def test_broken_quotes_and_empty_values_are_named(line, words):
    with pytest.raises(ConfigError) as e:
        parse_config(line + "\n", "f")
    for word in words:
        assert word in str(e.value)


def test_generated_example_man_and_admin_md_match_the_key_table():
    """Regenerates every output in memory: a checked-in copy that differs fails (fix: make conf-docs)."""
    assert confdoc.stale(REPO) == []


def test_every_key_is_in_the_example_every_man_page_it_names_and_admin_md():
    example = (REPO / confdoc.EXAMPLE).read_text()
    admin = (REPO / confdoc.ADMIN_MD).read_text()
    for key in KEYS.values():
        assert f"\n#{key.name}=" in example and f"| `{key.name}` |" in admin
        for page, command in confdoc.MAN_PAGES.items():
            assert (f".B {key.name}\n" in (REPO / page).read_text()) == (command in key.readers), (key.name, page)


def test_uncommented_example_parses_to_the_defaults():
    example = (REPO / confdoc.EXAMPLE).read_text()
    text = "\n".join(COMMENTED_KEY.sub("", line) for line in example.splitlines())
    settings = parse_config(text, confdoc.EXAMPLE)
    assert set(settings) == set(KEYS)
    for key in KEYS.values():
        assert settings[key.name] == (key.example if key.default.startswith("<") else key.default)


def test_table_defaults_are_the_codes_defaults():
    from xenscripts.core import log
    from xenscripts.core.files import DEFAULT_STATE_DIR
    from xenscripts.dhcp import isc
    from xenscripts.entry import client, wire
    from xenscripts.xen import hooks, ovsdb

    assert float(KEYS["client_timeout"].default) == client.DEFAULT_TIMEOUT
    assert KEYS["socket"].default == wire.DEFAULT_SOCKET
    assert KEYS["log_file"].default == log.DEFAULT_LOG_FILE
    assert KEYS["script_dir"].default == hooks.DEFAULT_SCRIPT_DIR
    assert KEYS["state_dir"].default == DEFAULT_STATE_DIR
    assert all(p in KEYS["dhcpd_conf"].default for p in isc.CONF_FILES)
    assert all(p in KEYS["dhcpd_args"].default for p in isc.ARG_FILES)
    assert KEYS["ovsdb"].default == f"{ovsdb.DEFAULT_RUNDIR}/db.sock"
    log_run = log.RunLog(script="t", stderr=None, log_file="", syslog_socket=None)
    assert log_run.max_priority == log.LEVELS[KEYS["log_level"].default]


def test_the_key_tables_readers_are_the_registrys_commands():
    """core/conf.py names the entry points (core imports no commands); the registry is the truth."""
    from xenscripts.commands import COMMANDS
    from xenscripts.core.conf import ENTRY_POINTS, VIF_SCRIPTS

    assert set(ENTRY_POINTS) == set(COMMANDS) - {"network"}  # Xen 2's name of network-bridge: no key of its own
    assert set(VIF_SCRIPTS) <= set(ENTRY_POINTS)
    assert set(confdoc.MAN_PAGES.values()) == {*ENTRY_POINTS, "xenscripts", "xenscripts-hotplugd"}


def _fenced_blocks(text: str) -> list[list[str]]:
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_every_config_example_in_the_docs_parses_with_the_real_reader():
    """A block showing a config key starts with '# /etc/xen/xenscripts.conf' and parses, commented keys too."""
    examples = 0
    for doc in DOCS:
        for block in _fenced_blocks(doc.read_text()):
            if not any(KEY_LINE.match(line) for line in block):
                continue
            assert block[0].startswith(MARK), f"{doc.name}: a config example without '{MARK}': {block[:3]}"
            parse_config("\n".join(block), doc.name)
            uncommented = "\n".join(COMMENTED_KEY.sub("", line) for line in block[1:])
            parse_config(uncommented, f"{doc.name} (commented keys)")
            examples += 1
    assert examples >= 2  # admin.md's sample and the operations chapter's
