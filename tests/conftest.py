"""Shared fixtures, the `host` marker, and the session-end leak check.

Host tests (tests/host/) are auto-marked ``host`` and skipped unless we are
root with working network namespaces.  After the whole session we fail
(non-zero exit status, loud message) when anything leaked:

* a ``xs-*`` network namespace owned by this process (or by a dead one),
* a SimHost that was never closed, or an Open vSwitch (xensim/ovs.py) never stopped,
* a new ``vif*``/``xenbr*``/``veth*`` link in the root namespace,
* a file left in a SimHost's lock dir,
* any change of the root namespace's links, addresses or routes.

Leaks are cleaned up as they are reported, so one does not cascade into the
next run.  Namespaces of other live test sessions are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.fixtures import xenstored  # noqa: F401  (re-exported fixture)
from tests.syslog_reader import syslog  # noqa: F401  (re-exported fixture)
from xensim import host as simhost_mod
from xensim import ovs as simovs

HOST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host")
ROOT_LINK_PREFIXES = ("vif", "xenbr", "veth")

_state: dict = {}


# ------------------------------------------------------------------ helpers
def _ip_json(*args: str):
    try:
        cp = subprocess.run(["ip", "-j", *args], check=False, capture_output=True, text=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if cp.returncode != 0:
        return None
    try:
        return json.loads(cp.stdout or "[]")
    except ValueError:
        return None


def _netns_usable() -> tuple[bool, str]:
    """Root, iproute2 present, and a namespace can really be made and deleted."""
    if "netns_ok" in _state:
        return _state["netns_ok"]
    if os.geteuid() != 0:
        res = (False, "needs root")
    elif shutil.which("ip") is None:
        res = (False, "iproute2 (`ip`) not installed")
    else:
        probe = f"xs-probe-{os.getpid()}"
        try:
            add = subprocess.run(["ip", "netns", "add", probe], check=False, capture_output=True, text=True,
                                 timeout=10, stdin=subprocess.DEVNULL)
            subprocess.run(["ip", "netns", "delete", probe], check=False, capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
            res = (add.returncode == 0, f"`ip netns add` failed: {add.stderr.strip()}")
        except (OSError, subprocess.TimeoutExpired) as e:
            res = (False, f"`ip netns` unavailable: {e}")
    _state["netns_ok"] = res
    return res


def _root_snapshot():
    """Root-namespace links/addresses/routes, without fields that change by themselves."""
    addrs = _ip_json("addr", "show")
    if addrs is None:
        return None
    links = []
    for link in addrs:
        links.append({
            "ifname": link.get("ifname"),
            "flags": sorted(link.get("flags", [])),
            "mtu": link.get("mtu"),
            "master": link.get("master"),
            "address": link.get("address"),
            "addrs": sorted((a.get("family"), a.get("local"), a.get("prefixlen"))
                            for a in link.get("addr_info", [])),
        })
    routes = []
    for fam in ("-4", "-6"):
        for r in _ip_json(fam, "route", "show", "table", "all") or []:
            r = {k: v for k, v in r.items() if k not in ("expires", "flags")}
            routes.append(json.dumps(r, sort_keys=True))
    return {"links": sorted(links, key=lambda x: str(x["ifname"])), "routes": sorted(routes)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ hooks
def pytest_configure(config):
    config.addinivalue_line("markers", "host: needs root and network namespaces")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HOST_DIR + os.sep):
            item.add_marker(pytest.mark.host)
            item.add_marker(pytest.mark.usefixtures("require_root"))


def pytest_sessionstart(session):
    if os.geteuid() == 0 and shutil.which("ip"):
        _state["root_before"] = _root_snapshot()
    if os.environ.get("XENSCRIPTS_TEST_MODE") == "daemon":
        _start_session_daemon()


def _start_session_daemon() -> None:
    """Daemon mode: every script the tests start goes through one warm hotplugd."""
    from xensim.hotplugd import HotplugDaemon

    workdir = tempfile.mkdtemp(prefix="xs-hotplugd-")
    daemon = HotplugDaemon(os.path.join(workdir, "hotplugd.sock")).start()
    os.environ["XENSCRIPTS_SOCKET"] = daemon.socket
    _state["daemon"] = daemon
    _state["daemon_dir"] = workdir


def _stop_session_daemon() -> list[str]:
    """Stop the session's daemon; a daemon that served nothing means the mode was not tested."""
    daemon = _state.pop("daemon", None)
    if daemon is None:
        return []
    served = daemon.served()
    status = daemon.stop()
    shutil.rmtree(_state.pop("daemon_dir"), ignore_errors=True)
    os.environ.pop("XENSCRIPTS_SOCKET", None)
    problems = [] if status == 0 else [f"hotplugd exited with status {status}"]
    if served == 0:
        problems.append("daemon mode: hotplugd ran no request")
    print(f"\nhotplugd served {served} requests", file=sys.stderr)
    return problems


def _collect_leaks() -> list[str]:
    problems: list[str] = simovs.leaked_switches()  # before the hosts: their daemons live in dom0

    for h in simhost_mod.open_hosts():
        problems.append(f"SimHost never closed: {h!r}")
        try:
            h.close()
        except Exception as e:  # noqa: BLE001 - report, keep cleaning
            problems.append(f"  closing it failed: {e}")

    me = os.getpid()
    leaked_ns = []
    for name in simhost_mod.list_sim_namespaces():
        owner = simhost_mod.namespace_owner_pid(name)
        if name.startswith(f"xs-probe-{me}") or owner == me or \
                (owner is not None and not _pid_alive(owner)):
            leaked_ns.append(name)
    if leaked_ns:
        problems.append(f"network namespaces left behind: {', '.join(leaked_ns)}")
        authors = {simhost_mod.namespace_creator(n) for n in leaked_ns} - {""}
        problems += [f"  made by {a}" for a in sorted(authors)]
        failed = simhost_mod.delete_sim_namespaces(leaked_ns)
        if failed:
            problems.append(f"  could not delete: {', '.join(failed)}")

    before = _state.get("root_before")
    before_names = {x["ifname"] for x in before["links"]} if before else set()
    for link in _ip_json("link", "show") or []:
        name = link.get("ifname", "")
        if name.startswith(ROOT_LINK_PREFIXES) and name not in before_names:
            problems.append(f"link {name!r} appeared in the ROOT network namespace")
            subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)

    for path in simhost_mod.leaked_lock_files(clear=True):
        problems.append(f"lock file left behind: {path}")

    if before is not None:
        after = _root_snapshot()
        if after != before:
            problems.append("the ROOT network namespace changed during the session:\n"
                            f"  before: {json.dumps(before, sort_keys=True)}\n"
                            f"  after:  {json.dumps(after, sort_keys=True)}")
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    problems = _stop_session_daemon() + _collect_leaks()
    if not problems:
        return
    text = "\n".join(["", "=" * 70, "LEAK CHECK FAILED (tests/conftest.py):",
                      *("  - " + p for p in problems), "=" * 70])
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(text, red=True, bold=True)
    else:
        print(text, file=sys.stderr)
    if session.exitstatus == pytest.ExitCode.OK or session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def require_root():
    ok, why = _netns_usable()
    if not ok:
        pytest.skip(f"host test: {why}")


@pytest.fixture
def bare_host(require_root, xenstored):  # noqa: F811 - xenstored is the imported fixture
    """A SimHost on the test's xenstored without any bridge (eth0 keeps dom0's address)."""
    with simhost_mod.SimHost(xenstored) as h:
        yield h


@pytest.fixture
def simhost(require_root, xenstored):  # noqa: F811 - xenstored is the imported fixture
    """A SimHost on the test's xenstored, with bridge xenbr0 holding the uplink."""
    h = simhost_mod.SimHost(xenstored)
    try:
        h.add_bridge("xenbr0", uplink=True)
        yield h
    finally:
        h.close()
