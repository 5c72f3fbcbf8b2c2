"""Debian's real xenstore clients (libxenstore) against the simulated xenstored,
side by side with xenscripts.xen.xenstore: both must see the same store."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.fixtures import xenstored  # noqa: F401
from tests.xenstore_api import TestXenStore
from tests.xenstore_api import connect_for_tests as connect
from xensim.xenstored import (
    XS_DIRECTORY,
    XS_DIRECTORY_PART,
    XS_GET_PERMS,
    XS_READ,
    XS_TRANSACTION_END,
    XS_TRANSACTION_START,
    XenstoreServer,
)

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/xenstore-read"),
                                reason="Debian's xenstore-utils is not installed")

BE = "/local/domain/0/backend/vif/5/0"


@pytest.fixture
def xs(xenstored: XenstoreServer) -> Iterator[TestXenStore]:  # noqa: F811
    with connect({"XENSTORED_PATH": xenstored.path}) as handle:
        yield handle


def run(server: XenstoreServer, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a real client as libxl would (plain PATH), on the server's socket."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XENSTORED_PATH": server.path}
    return subprocess.run(["/usr/bin/" + argv[0], *argv[1:]], env=env, capture_output=True,
                          text=True, timeout=10, check=False)


def test_xenstore_write_then_our_read(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    r = run(xenstored, "xenstore-write", BE + "/bridge", "xenbr1", BE + "/ip", "10.0.0.2 10.0.0.3")
    assert r.returncode == 0, r.stderr
    assert xs.read(BE + "/bridge") == "xenbr1"
    assert xs.read(BE + "/ip") == "10.0.0.2 10.0.0.3"
    assert xenstored.writes == [(BE + "/bridge", "xenbr1"), (BE + "/ip", "10.0.0.2 10.0.0.3")]


def test_our_write_then_xenstore_read(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/hotplug-status", "connected")
    xs.write_many([(BE + "/hotplug-error", "bridge xenbr9 does not exist"),
                   (BE + "/hotplug-status", "error")])
    r = run(xenstored, "xenstore-read", BE + "/hotplug-error", BE + "/hotplug-status")
    assert (r.returncode, r.stdout) == (0, "bridge xenbr9 does not exist\nerror\n")
    r = run(xenstored, "xenstore-read", "-p", BE + "/hotplug-status")
    assert r.stdout == f"{BE}/hotplug-status: error\n"


def test_xenstore_read_missing(xenstored: XenstoreServer) -> None:  # noqa: F811
    r = run(xenstored, "xenstore-read", BE + "/nope")
    assert r.returncode == 1
    assert r.stdout == ""
    assert f"couldn't read path {BE}/nope" in r.stderr


def test_xenstore_ls_lists_a_tree(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    for k, v in (("script", "/etc/xen/scripts/vif-bridge"), ("mac", "00:16:3e:00:00:05"),
                 ("bridge", "xenbr0"), ("handle", "0")):
        xs.write(f"{BE}/{k}", v)
    xenstored.requests.clear()
    r = run(xenstored, "xenstore-ls", "/local/domain/0/backend")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        'vif = ""\n'
        ' 5 = ""\n'
        '  0 = ""\n'
        '   script = "/etc/xen/scripts/vif-bridge"\n'
        '   mac = "00:16:3e:00:00:05"\n'
        '   bridge = "xenbr0"\n'
        '   handle = "0"\n'
    )
    # xenstore-ls walks with DIRECTORY + READ, outside any transaction.
    assert set(xenstored.requests) == {XS_DIRECTORY, XS_READ}


def test_xenstore_ls_full_paths_and_perms(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.mkdir(BE)
    xs.set_perms(BE, ["n0", "r5"])
    xs.write(BE + "/mac", "00:16:3e:00:00:05")  # inherits n0,r5
    xs.write(BE + "/mac2", "x")
    xs.set_perms(BE + "/mac2", ["n0"])
    xenstored.requests.clear()
    r = run(xenstored, "xenstore-ls", "-f", "-p", BE)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f'{BE}/mac = "00:16:3e:00:00:05"   (n0,r5)\n{BE}/mac2 = "x"   (n0)\n'
    assert XS_GET_PERMS in xenstored.requests


def test_xenstore_list_big_directory(xenstored: XenstoreServer) -> None:  # noqa: F811
    names = [f"a-rather-long-child-name-{i:04d}" for i in range(300)]
    for n in names:
        xenstored.write(f"/big/{n}", "")
    xenstored.requests.clear()
    r = run(xenstored, "xenstore-list", "/big")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == names
    # DIRECTORY answers E2BIG, so libxenstore falls back to DIRECTORY_PART.
    assert XS_DIRECTORY_PART in xenstored.requests


def test_xenstore_rm(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/sub/a", "1")
    xs.write(BE + "/keep", "1")
    r = run(xenstored, "xenstore-rm", BE + "/sub")
    assert r.returncode == 0, r.stderr
    assert xs.directory(BE) == ["keep"]
    assert xenstored.removes == [BE + "/sub"]
    # -t also removes parents left empty and valueless, up the tree.
    xs.write("/tidy/x/y/z", "1")
    xs.write("/tidy/other", "1")
    r = run(xenstored, "xenstore-rm", "-t", "/tidy/x/y/z")
    assert r.returncode == 0, r.stderr
    assert xs.directory("/tidy") == ["other"]
    # Missing node under an existing parent is OK; a missing parent is not.
    assert run(xenstored, "xenstore-rm", BE + "/absent").returncode == 0
    r = run(xenstored, "xenstore-rm", "/no/such/thing")
    assert r.returncode == 1
    assert "could not remove path /no/such/thing" in r.stderr


def test_xenstore_exists_exit_codes(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/mac", "x")
    assert run(xenstored, "xenstore-exists", BE + "/mac").returncode == 0
    assert run(xenstored, "xenstore-exists", BE).returncode == 0
    assert run(xenstored, "xenstore-exists", BE + "/nope").returncode == 1


def test_xenstore_chmod_then_our_get_perms(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/a/b", "1")
    r = run(xenstored, "xenstore-chmod", BE, "n0", "r5")
    assert r.returncode == 0, r.stderr
    assert xs.get_perms(BE) == ["n0", "r5"]
    assert xs.get_perms(BE + "/a") == ["n0"]  # not recursive without -r
    r = run(xenstored, "xenstore-chmod", "-r", BE, "b0", "w7")
    assert r.returncode == 0, r.stderr
    assert xs.get_perms(BE + "/a/b") == ["b0", "w7"]
    assert run(xenstored, "xenstore-chmod", BE, "z9").returncode != 0
    assert xs.get_perms(BE) == ["b0", "w7"]


def test_relative_paths_resolve_under_dom0(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    r = run(xenstored, "xenstore-read", "name")
    assert (r.returncode, r.stdout) == (0, "Domain-0\n")
    r = run(xenstored, "xenstore-write", "backend/vif/5/0/mtu", "9000")
    assert r.returncode == 0, r.stderr
    assert xenstored.read(BE + "/mtu") == "9000"
    assert xs.read("backend/vif/5/0/mtu") == "9000"


def test_multiple_writes_use_one_transaction(xenstored: XenstoreServer) -> None:  # noqa: F811
    xenstored.requests.clear()
    r = run(xenstored, "xenstore-write", "/m/a", "1", "/m/b", "2")
    assert r.returncode == 0, r.stderr
    assert xenstored.requests[0] == XS_TRANSACTION_START
    assert xenstored.requests[-1] == XS_TRANSACTION_END
    assert xenstored.ls("/m") == {"/m": "", "/m/a": "1", "/m/b": "2"}


def test_xenstore_watch_sees_our_write(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    env = {"PATH": "/usr/bin:/bin", "XENSTORED_PATH": xenstored.path}
    proc = subprocess.Popen(["/usr/bin/xenstore-watch", "-n", "2", BE], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == BE + "\n"  # the initial event
        xs.write(BE + "/hotplug-status", "connected")
        assert proc.stdout.readline() == BE + "/hotplug-status\n"
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_real_and_our_client_timings_are_sane(xs: TestXenStore, xenstored: XenstoreServer) -> None:  # noqa: F811
    xs.write(BE + "/bridge", "xenbr0")
    start = time.monotonic()
    for _ in range(20):
        with connect({"XENSTORED_PATH": xenstored.path}) as c:
            assert c.read(BE + "/bridge") == "xenbr0"
    # 20 connect+read round trips: well under libxl's budget (typically ~5 ms).
    assert time.monotonic() - start < 2
