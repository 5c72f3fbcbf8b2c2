"""xenscripts install's preflight: each missing prerequisite named with its fix, from what it really looks at."""

from __future__ import annotations

import sys

from xenscripts.admin import preflight


def fatal(found: list[preflight.Finding]) -> list[str]:
    return [f.line() for f in found if f.fatal]


def test_no_reachable_package_index_is_named_with_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "PIP_CONFS", ())
    env = {"PIP_INDEX_URL": f"file://{tmp_path}/none", "PIP_FIND_LINKS": str(tmp_path / "nolinks")}
    lines = fatal(preflight.check(sys.executable, None, env, build_venv=True))
    assert [line for line in lines if line.startswith("MISSING: a package index for pip: ")
            and "--wheelhouse DIR" in line and f"file://{tmp_path}/none does not exist" in line], lines
    (tmp_path / "nolinks").mkdir()  # one place that answers is enough
    assert not [line for line in fatal(preflight.check(sys.executable, None, env, True)) if "package index" in line]


def test_a_wheelhouse_must_hold_both_dependencies(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "PIP_CONFS", ())
    (tmp_path / "pyroute2-0.9.7-py3-none-any.whl").write_bytes(b"")
    lines = fatal(preflight.check(sys.executable, str(tmp_path), {}, build_venv=True))
    assert any(f"--wheelhouse {tmp_path} has no python_iptables" in line for line in lines), lines
    (tmp_path / "python_iptables-1.2.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert fatal(preflight.check(sys.executable, str(tmp_path), {}, build_venv=True)) == []


def test_a_python_without_venv_is_refused_and_nothing_else_is_asked_without_a_venv_build():
    assert "MISSING: /bin/false cannot make a venv (no venv/ensurepip module): apt-get install python3-venv" in \
        fatal(preflight.check("/bin/false", None, {}, build_venv=True))
    assert fatal(preflight.check("/bin/false", None, {}, build_venv=False)) == []


def test_a_bad_config_line_is_refused_before_anything_is_touched(tmp_path):
    conf = tmp_path / "xenscripts.conf"
    conf.write_text("firewall=nft   # a comment is fine\nfirewall=iptables\n")
    lines = fatal(preflight.check(sys.executable, None, {"XENSCRIPTS_CONF": str(conf)}, build_venv=False))
    assert [line for line in lines if f"{conf} line 2: bad value 'iptables' for firewall" in line
            and "xenscripts.conf.example" in line], lines


def test_the_nft_binding_is_named_where_the_firewall_is_nft_and_antispoof_without_nft_is_refused(tmp_path,
                                                                                               monkeypatch):
    from xenscripts.admin import components

    conf = tmp_path / "xenscripts.conf"
    env = {"XENSCRIPTS_CONF": str(conf), "XENSCRIPTS_NFTABLES_BINDING": str(tmp_path / "none.py")}
    conf.write_text("firewall=legacy\n")
    assert not [f for f in preflight.check(sys.executable, None, env, False) if "nftables" in f.what]
    conf.write_text("firewall=nft\n")
    notes = [f for f in preflight.check(sys.executable, None, env, False) if "nftables" in f.what]
    assert [(f.what.split()[0], f.fatal) for f in notes] == [("python3-nftables", False)]  # the nft command stands in
    assert "apt-get install python3-nftables" in notes[0].fix
    monkeypatch.setattr(components.shutil, "which", lambda name, path=None: None)  # no nft command either
    conf.write_text("firewall=nft\nantispoof=yes\n")
    assert [f.what.split()[0] for f in preflight.check(sys.executable, None, env, False) if f.fatal] == ["nftables"]
