"""xenscripts.xen.xenstore against the simulated xenstored (xensim/xenstored.py)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import xenstored  # noqa: F401
from tests.xenstore_api import TestXenStore
from tests.xenstore_api import connect_for_tests as connect
from xenscripts.xen.xenstore import Transaction, XenStore, XenStoreError
from xensim.xenstored import XS_DIRECTORY_PART, XenstoreServer

BE = "/local/domain/0/backend/vif/3/0"


@pytest.fixture
def xs(xenstored: XenstoreServer) -> Iterator[TestXenStore]:  # noqa: F811
    with connect({"XENSTORED_PATH": xenstored.path}) as handle:
        yield handle


def raises(name: str) -> pytest.RaisesContext[XenStoreError]:
    return pytest.raises(XenStoreError, match=f"^\\[Errno {getattr(errno, name)}\\] {name}")


# -- read / write / mkdir / rm / directory ---------------------------------


def test_write_then_read(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/bridge", "xenbr0")
    assert xs.read(BE + "/bridge") == "xenbr0"
    assert xenstored.read(BE + "/bridge") == "xenbr0"
    assert xenstored.writes == [(BE + "/bridge", "xenbr0")]


def test_write_creates_parents_with_empty_values(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write("/a/b/c", "v")
    assert xenstored.read("/a") == ""
    assert xenstored.read("/a/b") == ""
    assert xs.directory("/a") == ["b"]


@pytest.mark.parametrize("value", ["", "two words", "10.0.0.1 10.0.0.2", "ünï", "x" * 4000])
def test_values_round_trip(xs: TestXenStore, value: str) -> None:
    xs.write("/v", value)
    assert xs.read("/v") == value


def test_read_missing(xs: XenStore) -> None:
    assert xs.read("/no/such/node") is None
    assert not xs.exists("/no/such/node")
    with raises("ENOENT") as info:
        xs.read_required("/no/such/node")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == "/no/such/node"
    assert info.value.name == "ENOENT"
    assert isinstance(info.value, OSError)


def test_exists(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.write("/e/f", "")
    assert xs.exists("/e/f")
    assert xs.exists("/e")


def test_mkdir(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.mkdir("/m/n")
    assert xenstored.read("/m/n") == ""
    xenstored.write("/m/n", "keep")
    xs.mkdir("/m/n")
    assert xenstored.read("/m/n") == "keep"


def test_rm_is_recursive_and_tolerant(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    for k in ("a", "b/c", "b/d"):
        xenstored.write(f"{BE}/{k}", "1")
    xs.rm(BE + "/b")
    assert xenstored.ls(BE) == {BE: "", BE + "/a": "1"}
    xs.rm(BE + "/b")  # parent exists: xenstored answers OK
    xs.rm("/no/such/parent/node")  # ENOENT reply: tolerated
    assert xenstored.removes == [BE + "/b"]
    with raises("EINVAL"):
        xs.rm("/")


def test_directory_in_creation_order(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    for k in ("script", "mac", "bridge", "handle"):
        xenstored.write(f"{BE}/{k}", "x")
    assert xs.directory(BE) == ["script", "mac", "bridge", "handle"]
    assert xs.directory(BE + "/mac") == []
    assert xs.directory("/no/such") == []


def test_big_directory_uses_directory_part(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    names = [f"child-with-a-long-name-{i:04d}" for i in range(500)]
    for n in names:
        xenstored.write(f"/big/{n}", "")
    xenstored.requests.clear()
    assert xs.directory("/big") == names
    assert xenstored.requests.count(XS_DIRECTORY_PART) >= 4  # 500 * 28 bytes > 4096


# -- permissions -----------------------------------------------------------


def test_perms(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/mtu", "1500")
    assert xs.get_perms(BE + "/mtu") == ["n0"]
    xs.set_perms(BE, ["n0", "r3"])
    assert xs.get_perms(BE) == ["n0", "r3"]
    assert xenstored.get_perms(BE) == ["n0", "r3"]
    xs.write(BE + "/new", "1")  # new nodes inherit the parent's permissions
    assert xs.get_perms(BE + "/new") == ["n0", "r3"]
    with raises("EINVAL"):
        xs.set_perms(BE, ["x3"])
    with raises("ENOENT"):
        xs.set_perms("/no/such", ["n0"])
    with raises("ENOENT"):
        xs.get_perms("/no/such")


# -- transactions ----------------------------------------------------------


def test_transaction_commit(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    with xs.transaction() as t:
        t.write(BE + "/hotplug-error", "boom")
        t.write(BE + "/hotplug-status", "error")
        assert t.read(BE + "/hotplug-status") == "error"  # sees its own write
        assert xenstored.read(BE + "/hotplug-status") is None  # others do not yet
        assert xs.read(BE + "/hotplug-status") is None
        assert xenstored.writes == []
    assert xenstored.read(BE + "/hotplug-error") == "boom"
    assert xenstored.read(BE + "/hotplug-status") == "error"
    assert xenstored.writes == [(BE + "/hotplug-error", "boom"), (BE + "/hotplug-status", "error")]


def test_transaction_abort(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.write("/keep", "1")
    t = xs.transaction()
    t.write("/t/x", "1")
    t.rm("/keep")
    t.abort()
    assert xenstored.read("/t/x") is None
    assert xenstored.read("/keep") == "1"
    assert xenstored.writes == [] and xenstored.removes == []


def test_transaction_aborts_on_exception(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    with pytest.raises(RuntimeError), xs.transaction() as t:
        t.write("/t/y", "1")
        raise RuntimeError("no")
    assert xenstored.read("/t/y") is None
    assert xs.read("/local/domain/0/name") == "Domain-0"  # connection still fine


def test_transaction_rm_and_mkdir_apply_on_commit(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.write("/r/a", "1")
    with xs.transaction() as t:
        t.rm("/r/a")
        t.mkdir("/r/b")
        assert t.directory("/r") == ["b"]
        assert xenstored.read("/r/a") == "1"
    assert xenstored.ls("/r") == {"/r": "", "/r/b": ""}
    assert xenstored.removes == ["/r/a"]


def test_write_many(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write_many([(BE + "/hotplug-error", "no bridge"), (BE + "/hotplug-status", "error")])
    assert xenstored.ls(BE) == {BE: "", BE + "/hotplug-error": "no bridge",
                                BE + "/hotplug-status": "error"}
    assert xenstored.writes == [(BE + "/hotplug-error", "no bridge"), (BE + "/hotplug-status", "error")]


def test_unknown_transaction_and_nesting(xs: XenStore) -> None:
    bogus = Transaction(xs._conn, 4242)
    with raises("ENOENT"):
        bogus.write("/local/x", "1")  # unknown transaction id
    with raises("ENOENT"):
        bogus.commit()
    with xs.transaction() as t, raises("EBUSY"):
        t.transaction()


# -- watches ---------------------------------------------------------------


def test_watch_events(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.watch(BE, "tok")
    assert xs.read_watch(1) == (BE, "tok")  # fired once up front
    xs.write(BE + "/hotplug-status", "connected")
    assert xs.read_watch(1) == (BE + "/hotplug-status", "tok")
    xs.write("/elsewhere", "1")
    assert xs.read_watch(0.1) is None
    with raises("EEXIST"):
        xs.watch(BE, "tok")
    xs.unwatch(BE, "tok")
    xs.write(BE + "/x", "1")
    assert xs.read_watch(0.1) is None
    with raises("ENOENT"):
        xs.unwatch(BE, "tok")


def test_watch_sees_other_connections_and_removal(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.write(BE + "/sub/leaf", "1")
    xs.watch(BE + "/sub/leaf", "leaf")
    assert xs.read_watch(1) == (BE + "/sub/leaf", "leaf")
    with connect({"XENSTORED_PATH": xenstored.path}) as other:
        other.write(BE + "/sub/leaf", "2")
        assert xs.read_watch(1) == (BE + "/sub/leaf", "leaf")
        other.rm(BE)  # removing an ancestor fires watches on the nodes below
        assert xs.read_watch(1) == (BE + "/sub/leaf", "leaf")


def test_events_queued_while_waiting_for_replies(xs: XenStore) -> None:
    xs.watch("/q", "t1")
    xs.write("/q/a", "1")
    xs.write("/q/b", "2")
    assert xs.read("/q/b") == "2"
    assert [xs.read_watch(1) for _ in range(3)] == [("/q", "t1"), ("/q/a", "t1"), ("/q/b", "t1")]


def test_relative_watch_reports_relative_paths(xs: XenStore) -> None:
    xs.watch("device/vif", "rel")
    assert xs.read_watch(1) == ("device/vif", "rel")
    xs.write("/local/domain/0/device/vif/0/mtu", "9000")
    assert xs.read_watch(1) == ("device/vif/0/mtu", "rel")


def test_transaction_events_fire_on_commit(xs: XenStore) -> None:
    xs.watch("/w", "tx")
    assert xs.read_watch(1) == ("/w", "tx")
    with xs.transaction() as t:
        t.write("/w/a", "1")
        assert xs.read_watch(0.1) is None
    assert xs.read_watch(1) == ("/w/a", "tx")


# -- errors, paths, domains ------------------------------------------------


@pytest.mark.parametrize("path", ["/a//b", "/a/b/", "", "@special", "/bad char", "/a*b",
                                  "/" + "x" * 3100])
def test_invalid_paths(xs: TestXenStore, path: str) -> None:
    with raises("EINVAL"):
        xs.read(path)


def test_special_watch_paths_are_allowed(xs: XenStore) -> None:
    xs.watch("@releaseDomain", "rd")
    assert xs.read_watch(1) == ("@releaseDomain", "rd")


def test_unknown_message_type(xs: XenStore) -> None:
    with raises("EINVAL"):
        xs._conn.request(99, b"/\0", 0, "/")
    assert xs.read("/local/domain/0/domid") == "0"


def test_oversized_request_is_refused_locally(xs: XenStore) -> None:
    with raises("E2BIG"):
        xs.write("/big", "x" * 5000)
    assert xs.read("/big") is None


def test_injected_error(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.fail(BE + "/hotplug-status", "EACCES")
    with raises("EACCES") as info:
        xs.write(BE + "/hotplug-status", "connected")
    assert info.value.errno == errno.EACCES
    assert xenstored.read(BE + "/hotplug-status") is None
    xenstored.fail(BE + "/hotplug-status", None)
    xs.write(BE + "/hotplug-status", "connected")


def test_relative_paths_resolve_under_dom0(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write("backend/vif/9/0/mac", "00:16:3e:00:00:01")
    assert xenstored.read("/local/domain/0/backend/vif/9/0/mac") == "00:16:3e:00:00:01"
    assert xs.read("name") == "Domain-0"
    assert xs.get_domain_path(7) == "/local/domain/7"
    assert xs.get_domain_path(0) == "/local/domain/0"


def test_concurrent_connections(xenstored: XenstoreServer) -> None:  # noqa: F811
    def worker(n: int) -> None:
        with connect({"XENSTORED_PATH": xenstored.path}) as c:
            for i in range(20):
                c.write(f"/c/{n}/{i}", str(i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len([p for p in xenstored.ls("/c") if p.count("/") == 3]) == 160


def test_wait_for(xenstored: XenstoreServer) -> None:  # noqa: F811
    threading.Timer(0.05, xenstored.write, args=("/later", "yes")).start()
    assert xenstored.wait_for("/later", "yes", timeout=5)
    assert not xenstored.wait_for("/never", "x", timeout=0.05)


# -- connection failures and timeouts ----------------------------------------


def test_timeout_on_a_server_that_never_answers(tmp_path: Path) -> None:
    path = str(tmp_path / "mute.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        xs = connect({"XENSTORED_PATH": path}, timeout=0.3)
        start = time.monotonic()
        with raises("ETIMEDOUT") as info:
            xs.read("/local/domain/0/name")
        assert 0.25 < time.monotonic() - start < 2
        assert info.value.errno == errno.ETIMEDOUT
        with raises("EBADF"):  # the connection is closed, later calls fail fast
            xs.read("/local/domain/0/name")
        xs.close()
    finally:
        listener.close()


def test_connect_errors(tmp_path: Path) -> None:
    with raises("ENOENT"):
        connect({"XENSTORED_PATH": str(tmp_path / "missing.sock")})
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on
    with raises("ECONNREFUSED"):
        connect({"XENSTORED_PATH": str(stale)})


def test_server_going_away(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    assert xs.read("/local/domain/0/domid") == "0"
    xenstored.stop()
    with pytest.raises(XenStoreError) as info:
        xs.read("/local/domain/0/domid")
    assert info.value.name in ("ECONNRESET", "EPIPE")
    assert not os.path.exists(xenstored.path)


def test_standalone_server(tmp_path: Path) -> None:
    path = str(tmp_path / "standalone.sock")
    script = Path(__file__).resolve().parents[2] / "xensim" / "xenstored.py"
    proc = subprocess.Popen([sys.executable, str(script), path], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        with connect({"XENSTORED_PATH": path}, timeout=2) as xs:
            xs.write("/demo", "1")
            assert xs.read("/demo") == "1"
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
    assert not os.path.exists(path)
