"""A real Open vSwitch per simulated host: its own ovsdb-server and ovs-vswitchd in dom0's namespace.

Standard library only. The database, sockets, pid and log files live in a
run directory inside the SimHost's work directory (``OVS_RUNDIR``); bridges
use the userspace datapath (``datapath_type=netdev``), which needs no kernel
module. Nothing touches the machine's own namespace or /var/run/openvswitch::

    with SimHost(xs) as host, OvsSwitch(host) as ovs:
        ovs.add_bridge("ovsbr0")
        host.run_hotplug(our_command("vif-openvswitch"), 1, extra_env=ovs.env)
        ovs.vsctl("get", "port", "vif1.0", "tag")

Every switch started is recorded until it is stopped; ``leaked_switches()``
(the session's leak check) stops and reports any left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Self

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TIMEOUT = 15.0

_running: list[OvsSwitch] = []
_running_lock = threading.Lock()


class OvsError(RuntimeError):
    pass


def ovs_available() -> tuple[bool, str]:
    """True when Open vSwitch's daemons and schema are installed (else why not)."""
    for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"):
        if shutil.which(tool) is None:
            return False, f"{tool} not installed (Debian package openvswitch-switch)"
    if not os.path.exists(SCHEMA):
        return False, f"{SCHEMA} missing"
    return True, ""


class OvsSwitch:
    """ovsdb-server + ovs-vswitchd for one SimHost (see module doc)."""

    def __init__(self, host, name: str = "ovs") -> None:
        self.host = host
        self.rundir = os.path.join(host.workdir, name)
        self.db_sock = os.path.join(self.rundir, "db.sock")
        self.env = {"OVS_RUNDIR": self.rundir}  # what our scripts (and ovs-vsctl) need to find it
        self._pids: dict[str, int] = {}
        self._stopped = False
        os.makedirs(self.rundir)
        with _running_lock:
            _running.append(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------- processes
    def _daemon_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OVS_")}
        env.update(OVS_RUNDIR=self.rundir, OVS_LOGDIR=self.rundir, OVS_DBDIR=self.rundir,
                   OVS_SYSCONFDIR=self.rundir, OVS_PKGDATADIR="/usr/share/openvswitch")
        return env

    def _run(self, *cmd: str, ns: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", self.host.dom0, *cmd] if ns else list(cmd)
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=self._daemon_env(),
                            stdin=subprocess.DEVNULL, check=False)
        if check and cp.returncode != 0:
            raise OvsError(f"{' '.join(cmd)} failed ({cp.returncode}): {cp.stderr.strip()}")
        return cp

    def _start(self) -> None:
        r = self.rundir
        self._run("ovsdb-tool", "create", f"{r}/conf.db", SCHEMA, ns=False)
        self._run("ovsdb-server", f"{r}/conf.db", f"--remote=punix:{self.db_sock}",
                  f"--unixctl={r}/ovsdb-server.ctl", f"--pidfile={r}/ovsdb-server.pid",
                  f"--log-file={r}/ovsdb-server.log", "--detach", "--no-chdir")
        self._pids["ovsdb-server"] = self._read_pid("ovsdb-server")
        self.vsctl("--no-wait", "init")
        self._run("ovs-vswitchd", f"unix:{self.db_sock}", f"--unixctl={r}/ovs-vswitchd.ctl",
                  f"--pidfile={r}/ovs-vswitchd.pid", f"--log-file={r}/ovs-vswitchd.log",
                  "--detach", "--no-chdir")
        self._pids["ovs-vswitchd"] = self._read_pid("ovs-vswitchd")
        self.vsctl("--timeout=10", "wait-until", "Open_vSwitch", ".", "cur_cfg>=0")

    def _read_pid(self, name: str) -> int:
        path = os.path.join(self.rundir, f"{name}.pid")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                with open(path, encoding="ascii") as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.02)
        raise OvsError(f"{name} wrote no pid file {path}")

    def pids(self) -> dict[str, int]:
        return dict(self._pids)

    def restart(self) -> None:
        """Stop both daemons and start them anew on the same sockets, with an empty database."""
        self._exit_daemons()
        for entry in os.listdir(self.rundir):
            os.unlink(os.path.join(self.rundir, entry))
        self._start()

    def stop(self) -> None:
        """Stop both daemons (exit through their control sockets, then SIGKILL) and remove the run dir."""
        if self._stopped:
            return
        self._stopped = True
        self._exit_daemons()
        with _running_lock:
            if self in _running:
                _running.remove(self)
        shutil.rmtree(self.rundir, ignore_errors=True)

    def _exit_daemons(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pid = self._pids.get(name)
            if pid is None:
                continue
            self._run("ovs-appctl", "-t", f"{self.rundir}/{name}.ctl", "exit", ns=False, check=False)
            if not _wait_gone(pid, 5.0):
                _kill(pid)
        self._pids.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- observers
    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``ovs-vsctl --db=unix:<our socket> ARGS`` (the independent observer)."""
        return self._run("ovs-vsctl", f"--db=unix:{self.db_sock}", *args, ns=False, check=check)

    def ofctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``ovs-ofctl ARGS`` with this switch's run dir (bridge names resolve to its .mgmt sockets)."""
        return self._run("ovs-ofctl", *args, ns=False, check=check)

    def appctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``ovs-appctl ARGS`` to this switch's ovs-vswitchd (``fdb/show BRIDGE``: what it has learned)."""
        return self._run("ovs-appctl", "-t", f"{self.rundir}/ovs-vswitchd.ctl", *args, ns=False, check=check)

    def add_bridge(self, name: str = "ovsbr0", *, uplink: bool = False) -> str:
        """An OVS bridge on the userspace datapath, up; with *uplink*, dom0's eth0 becomes its port."""
        self.vsctl("--timeout=10", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
        self.host.ip(self.host.dom0, "link", "set", name, "up")
        if uplink:
            self.vsctl("--timeout=10", "add-port", name, "eth0")
        return name

    def port(self, name: str) -> dict | None:
        """The Port row *name* (columns as JSON values), or None."""
        cp = self.vsctl("--format=json", "--columns=name,tag,trunks,vlan_mode,external_ids,_uuid",
                        "find", "port", f"name={name}")
        return _rows(cp.stdout)[0] if _rows(cp.stdout) else None

    def interface(self, name: str) -> dict | None:
        cp = self.vsctl("--format=json", "--columns=name,external_ids,ofport,mtu,_uuid",
                        "find", "interface", f"name={name}")
        rows = _rows(cp.stdout)
        return rows[0] if rows else None

    def bridge_of(self, port: str) -> str | None:
        cp = self.vsctl("port-to-br", port, check=False)
        return cp.stdout.strip() if cp.returncode == 0 else None

    def ports(self, bridge: str) -> list[str]:
        return self.vsctl("list-ports", bridge).stdout.split()

    def flows(self, bridge: str) -> list[str]:
        """``ovs-ofctl dump-flows`` lines (without durations and counters)."""
        out = self.ofctl("--no-stats", "dump-flows", bridge).stdout
        return [line.strip() for line in out.splitlines() if line.strip() and "NXST_FLOW" not in line
                and "OFPST_FLOW" not in line]


def _rows(text: str) -> list[dict]:
    """``ovs-vsctl --format=json`` output as a list of {column: plain value}."""
    data = json.loads(text or '{"data": [], "headings": []}')
    return [{h: _plain(v) for h, v in zip(data["headings"], row)} for row in data["data"]]


def _plain(value):
    if isinstance(value, list) and value and value[0] in ("set", "map", "uuid"):
        kind, items = value
        if kind == "set":
            return [_plain(v) for v in items]
        if kind == "map":
            return {k: _plain(v) for k, v in items}
        return items
    return value


def _wait_gone(pid: int, timeout: float) -> bool:
    """True once *pid* has exited: gone, or a zombie (a detached daemon's reaper is pid 1, which may be slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.005)
    return False


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(pid, 2.0)


def leaked_switches() -> list[str]:
    """Switches never stopped (their daemons are stopped now); for the session's leak check."""
    with _running_lock:
        left = list(_running)
    out = []
    for switch in left:
        out.append(f"Open vSwitch never stopped: {switch.rundir} (pids {switch.pids()})")
        switch.stop()
    return out
