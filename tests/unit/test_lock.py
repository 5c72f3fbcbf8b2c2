"""lock.py interoperates with upstream's locking.sh: same files, flock + inode check."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from xenscripts.core.errors import HotplugError
from xenscripts.core.lock import hotplug_lock
from xensim.poll import file_contains

LOCKING_SH = "/etc/xen/scripts/locking.sh"
pytestmark = pytest.mark.skipif(not os.path.exists(LOCKING_SH), reason="Debian's xen-utils-common is not installed")


def upstream(lock_dir: Path, script: str) -> subprocess.Popen:
    """Run *script* in bash with upstream's locking.sh sourced and LOCK_BASEDIR pointed at *lock_dir*."""
    return subprocess.Popen(["bash", "-c", f'. {LOCKING_SH}; LOCK_BASEDIR="$1"; {script}', "bash", str(lock_dir)])




def test_upstream_waits_for_our_lock(tmp_path):
    events = tmp_path / "events"
    with hotplug_lock("iptables", str(tmp_path)):
        proc = upstream(tmp_path, f'echo trying >> {events}; claim_lock iptables; echo bash-got >> {events}; '
                                  f'release_lock iptables')
        assert file_contains(events, "trying")
        assert not file_contains(events, "bash-got", timeout=0.5), "upstream took a lock we hold"
        with open(events, "a") as f:
            f.write("ours-released\n")
    assert proc.wait(10) == 0
    assert events.read_text().splitlines() == ["trying", "ours-released", "bash-got"]
    assert os.listdir(tmp_path) == ["events"]  # both sides removed the lock file


def test_we_wait_for_upstreams_lock_and_time_out(tmp_path):
    held, go = tmp_path / "held", tmp_path / "go"
    proc = upstream(tmp_path, f'claim_lock iptables; echo yes > {held}; '
                              f'while [ ! -e {go} ]; do sleep 0.01; done; release_lock iptables')
    try:
        assert file_contains(held, "yes")
        with pytest.raises(HotplugError, match="Timed out after 0.3 s waiting for lock"), \
                hotplug_lock("iptables", str(tmp_path), timeout=0.3):
            pass
        go.touch()
        with hotplug_lock("iptables", str(tmp_path), timeout=10):
            assert (tmp_path / "iptables").exists()
    finally:
        go.touch()
        assert proc.wait(10) == 0
    assert not (tmp_path / "iptables").exists()


def test_a_lock_file_removed_under_a_waiter_is_taken_again(tmp_path):
    """The inode check: a waiter whose file was unlinked by the holder re-opens the new one."""
    order: list[str] = []
    with hotplug_lock("x", str(tmp_path)):
        waiter = threading.Thread(target=lambda: _take(tmp_path, order))
        waiter.start()
        assert not file_contains(tmp_path / "none", "x", timeout=0.2)
        order.append("first-released")
    waiter.join(10)
    assert order == ["first-released", "second-held"]
    assert not (tmp_path / "x").exists()


def _take(lock_dir: Path, order: list[str]) -> None:
    with hotplug_lock("x", str(lock_dir), timeout=10):
        order.append("second-held")


def test_a_pruned_lock_dir_goes_with_its_last_lock_and_comes_back(tmp_path):
    locks = tmp_path / "firewall-locks"
    with hotplug_lock("vif1.0", str(locks), timeout=1, prune=True):
        with hotplug_lock("vif2.0", str(locks), timeout=1, prune=True):
            assert sorted(p.name for p in locks.iterdir()) == ["vif1.0", "vif2.0"]
        assert [p.name for p in locks.iterdir()] == ["vif1.0"]  # another lock still there: the dir stays
    assert not locks.exists()
    with hotplug_lock("vif1.0", str(locks), timeout=1, prune=True):  # made again by the next
        assert locks.is_dir()


def test_pruned_lock_dirs_under_contention_never_fail(tmp_path):
    """Many holders taking and pruning one directory's locks at once: each gets its lock, none an error."""
    locks, errors = str(tmp_path / "firewall-locks"), []

    def churn(n: int) -> None:
        try:
            for _ in range(200):
                with hotplug_lock(f"vif{n}.0", locks, timeout=10, prune=True):
                    pass
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)
    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
