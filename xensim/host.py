"""The simulated Xen host: network namespaces + a xenstore filled as libxl fills it.

Standard library only (subprocess + iproute2), so pytest, the demo and the
benchmarks can all use it::

    from xensim.host import SimHost
    from xensim.xenstored import XenstoreServer

    xs = XenstoreServer("/tmp/xs-demo.sock").start()
    try:
        with SimHost(xs) as host:                # namespaces xs-<pid>-<n>-{lan,dom0}
            host.add_bridge("xenbr0")            # eth0 + its address move onto xenbr0
            guest = host.add_guest(1)            # netns xs-...-g1, vif1.0 in dom0
            cp = host.run_hotplug("/etc/xen/scripts/vif-bridge", 1, command="online")
            assert cp.returncode == 0, cp.stderr
            assert xs.read(guest.backend + "/hotplug-status") == "connected"
            assert host.ping(guest.ns, host.router_ip)
    finally:
        xs.stop()

(run from the repository root, or with it on sys.path).

Topology (``<tag>`` is unique per SimHost, ``<k>`` is ``subnet_index``)::

    xs-<tag>-lan    lan0 10.<k>.0.1/24                 (the router / outside world)
                      |  veth
    xs-<tag>-dom0   eth0 10.<k>.0.2/24, default via .1  (dom0's uplink)
                    xenbr0 (add_bridge)                (takes eth0 + its address)
                    vif<D>.<N>  (down, no master: what netback leaves)
                      |  veth
    xs-<tag>-g<D>   eth<N> 10.<k>.0.<10+D>/24, default via .1

Nothing is ever created in the root network namespace: every veth pair is
created from inside a namespace with its peer placed directly in another
one.  ``close()`` deletes every namespace and the per-host work directory
(log file, lock dir); it is idempotent and runs from ``__exit__``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

__all__ = [
    "LIBXL_PATH",
    "NS_PREFIX",
    "Guest",
    "SimHost",
    "SimHostError",
    "delete_namespace",
    "delete_sim_namespaces",
    "leaked_lock_files",
    "list_sim_namespaces",
    "namespace_creator",
    "namespace_owner_pid",
    "open_hosts",
]

NS_PREFIX = "xs-"
NETNS_DIR = "/run/netns"    # where `ip netns` keeps its names
LIBXL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UPSTREAM_SCRIPTS = "/etc/xen/scripts"
HOTPLUG_LOG_DIR = "/var/log/xen"
CMD_TIMEOUT = 15.0        # any single ip/bridge/ping invocation
HOTPLUG_TIMEOUT = 40.0    # LIBXL_HOTPLUG_TIMEOUT

_counter = itertools.count(1)
_counter_lock = threading.Lock()
# Files found in a host's lock dir when it was closed (the lock dir itself is
# removed with the host); the test session's leak check reports these.
_lock_leaks: list[str] = []
_leak_lock = threading.Lock()
# SimHosts created and not yet closed (a test that forgets close() leaks).
_open_hosts: list[SimHost] = []
# Every host's tag -> the test that made it (PYTEST_CURRENT_TEST), to name a leak's author.
_creators: dict[str, str] = {}


class SimHostError(RuntimeError):
    pass


def _next_id() -> int:
    with _counter_lock:
        return next(_counter)


def _run(cmd: list[str], *, check: bool = True, timeout: float = CMD_TIMEOUT,
         env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                            env=env, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise SimHostError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise SimHostError(f"command failed ({cp.returncode}): {' '.join(cmd)}\n"
                           f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
    return cp


def list_sim_namespaces(prefix: str = NS_PREFIX) -> list[str]:
    """Names of existing network namespaces starting with ``prefix``."""
    cp = _run(["ip", "-j", "netns", "list"], check=False)
    if cp.returncode != 0 or not cp.stdout.strip():
        return []
    try:
        entries = json.loads(cp.stdout)
    except ValueError:
        return []
    return [e["name"] for e in entries if e.get("name", "").startswith(prefix)]


def delete_namespace(name: str, tries: int = 5) -> str | None:
    """Delete namespace ``name``, checked on ``/run/netns`` and tried again while it stays; the error or None."""
    error = ""
    for attempt in range(tries):
        cp = _run(["ip", "netns", "delete", name], check=False)
        if not os.path.lexists(os.path.join(NETNS_DIR, name)):
            return None
        error = cp.stderr.strip() or f"still in {NETNS_DIR} after `ip netns delete` (rc {cp.returncode})"
        time.sleep(0.1 * (attempt + 1))
    return error


def delete_sim_namespaces(names) -> list[str]:
    """Delete the given namespaces; return those that could not be deleted."""
    return [name for name in names if delete_namespace(name) is not None]


def open_hosts() -> list[SimHost]:
    """SimHosts of this process that were never closed."""
    with _leak_lock:
        return list(_open_hosts)


def namespace_owner_pid(name: str) -> int | None:
    """The pid embedded in a default-tagged namespace name ``xs-<pid>-<n>-...``."""
    parts = name.split("-")
    if len(parts) >= 4 and parts[0] + "-" == NS_PREFIX and parts[1].isdigit() \
            and parts[2].isdigit():
        return int(parts[1])
    return None


def namespace_creator(name: str) -> str:
    """The test that made the SimHost owning namespace ``name`` ("" if unknown)."""
    with _leak_lock:
        for tag, test in _creators.items():
            if name.startswith(f"{NS_PREFIX}{tag}-"):
                return test
    return ""


def leaked_lock_files(clear: bool = False) -> list[str]:
    """Lock files that were still present when their SimHost was closed."""
    with _leak_lock:
        out = list(_lock_leaks)
        if clear:
            _lock_leaks.clear()
    return out


@dataclass
class Guest:
    domid: int
    devid: int
    ns: str                 # the guest's network namespace
    vif: str                # dom0 end: vif<domid>.<devid> (netback's name)
    guest_if: str           # guest end: eth<devid>
    mac: str
    ip: str | None          # the guest's own address (no prefix), None if unset
    backend: str            # /local/domain/0/backend/vif/<domid>/<devid>
    frontend: str           # /local/domain/<domid>/device/vif/<devid>
    xenbus_path: str        # backend/vif/<domid>/<devid> (relative, as libxl passes it)
    nic_type: str = "vif"
    emu: str | None = None          # vif<domid>.<devid>-emu for ioemu NICs
    emu_guest_if: str | None = None
    vifname: str | None = None
    extra: dict = field(default_factory=dict)


class SimHost:
    """A simulated Xen dom0 + LAN + guests in network namespaces (see module doc)."""

    def __init__(self, xs, tag: str | None = None, subnet_index: int | None = None):
        self.xs = xs
        n = _next_id()
        self.tag = tag or f"{os.getpid()}-{n}"
        self.k = subnet_index if subnet_index is not None else 1 + (os.getpid() + n) % 250
        if not 0 < self.k < 255:
            raise ValueError("subnet_index must be in 1..254")
        self.prefix = f"{NS_PREFIX}{self.tag}-"
        self.lan = self.prefix + "lan"
        self.dom0 = self.prefix + "dom0"
        self.router_ip = f"10.{self.k}.0.1"
        self.dom0_ip = f"10.{self.k}.0.2"
        self.guests: dict[tuple[int, int], Guest] = {}
        self.bridges: list[str] = []
        self._namespaces: list[str] = []
        self._closed = False
        self.workdir = tempfile.mkdtemp(prefix=f"xs-{self.tag}-")
        self.log_file = os.path.join(self.workdir, "xen-hotplug.log")
        self.lock_dir = os.path.join(self.workdir, "locks")
        os.makedirs(self.lock_dir)
        os.makedirs(HOTPLUG_LOG_DIR, exist_ok=True)  # upstream: exec 2>>/var/log/xen/...
        with _leak_lock:
            _open_hosts.append(self)
            _creators[self.tag] = os.environ.get("PYTEST_CURRENT_TEST", "")
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- setup
    def _add_ns(self, name: str) -> str:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def _setup(self) -> None:
        self._add_ns(self.lan)
        self._add_ns(self.dom0)
        self.ip(self.lan, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0",
                "netns", self.dom0)
        self.ip(self.lan, "addr", "add", f"{self.router_ip}/24", "dev", "lan0")
        self.ip(self.lan, "link", "set", "lan0", "up")
        self.ip(self.dom0, "addr", "add", f"{self.dom0_ip}/24", "dev", "eth0")
        self.ip(self.dom0, "link", "set", "eth0", "up")
        self.ip(self.dom0, "route", "add", "default", "via", self.router_ip)

    def add_bridge(self, name: str = "xenbr0", uplink: bool = True, mtu: int | None = None,
                   addr_on_bridge: bool = True) -> str:
        """A bridge in dom0 (stp off, forward_delay 0), up.

        With ``uplink``, eth0 is enslaved and dom0's address and default route
        move onto the bridge (``addr_on_bridge``) or are dropped: what
        network-bridge / ifupdown leave behind.
        """
        d = self.dom0
        cmd = ["link", "add", "name", name, "type", "bridge", "stp_state", "0",
               "forward_delay", "0"]
        if mtu is not None:
            cmd[4:4] = ["mtu", str(mtu)]
        self.ip(d, *cmd)
        self.bridges.append(name)
        if uplink:
            self.ip(d, "addr", "flush", "dev", "eth0")  # also drops the default route
            if mtu is not None:
                self.ip(d, "link", "set", "eth0", "mtu", str(mtu))
            self.ip(d, "link", "set", "eth0", "master", name)
        self.ip(d, "link", "set", name, "up")
        if uplink and addr_on_bridge:
            self.ip(d, "addr", "add", f"{self.dom0_ip}/24", "dev", name)
            self.ip(d, "route", "replace", "default", "via", self.router_ip, "dev", name)
        return name

    @staticmethod
    def default_mac(domid: int, devid: int = 0) -> str:
        return f"00:16:3e:{(domid >> 8) & 0x7f:02x}:{domid & 0xff:02x}:{devid & 0xff:02x}"

    def vm_uuid(self, domid: int) -> str:
        """The guest's uuid (libxl's /vm/<uuid>), made from the host's subnet and the domid."""
        return f"00000000-0000-4000-8000-{self.k:04x}{domid:08x}"

    def guest_ip(self, domid: int) -> str:
        return f"10.{self.k}.0.{10 + domid}"

    def add_guest(self, domid: int, devid: int = 0, *, bridge: str | None = "xenbr0",
                  mac: str | None = None, ip: str | None = None, mtu: int | None = None,
                  vifname: str | None = None, script: str | None = "/etc/xen/scripts/vif-bridge",
                  nic_type: str = "vif", gatewaydev: str | None = None,
                  extra_backend: dict | None = None, guest_addr: str | None = None,
                  rate: str | None = None) -> Guest:
        """A guest NIC: netns + veth pair + the xenstore nodes libxl writes.

        ``ip`` (space-separated list, as in the xl config) is written to the
        backend only; the guest's own address is ``guest_addr`` (CIDR) or, for
        devid 0, ``10.<k>.0.<10+domid>/24``; ``guest_addr=""`` means none.
        ``bridge=None`` omits the key (libxl always writes it; this is for
        testing the fallback).  ``nic_type`` is "vif" or "ioemu".
        """
        if (domid, devid) in self.guests:
            raise SimHostError(f"guest nic {domid}.{devid} exists")
        if nic_type not in ("vif", "ioemu"):
            raise ValueError("nic_type must be 'vif' or 'ioemu'")
        if not 0 < domid < 245:
            raise ValueError("domid must be in 1..244 (it names the guest address)")
        mac = (mac or self.default_mac(domid, devid)).lower()
        gns = self.prefix + f"g{domid}"
        if gns not in self._namespaces:
            self._add_ns(gns)
        vif = f"vif{domid}.{devid}"
        gif = f"eth{devid}"
        self.ip(self.dom0, "link", "add", vif, "type", "veth", "peer", "name", gif,
                "netns", gns)
        self.ip(gns, "link", "set", gif, "address", mac)
        if mtu is not None:
            self.ip(gns, "link", "set", gif, "mtu", str(mtu))
        self.ip(gns, "link", "set", gif, "up")
        if guest_addr is None:
            guest_addr = f"{self.guest_ip(domid)}/24" if devid == 0 else ""
        gip = None
        if guest_addr:
            self.ip(gns, "addr", "add", guest_addr, "dev", gif)
            gip = guest_addr.split("/")[0]
            if devid == 0:
                self.ip(gns, "route", "replace", "default", "via", self.router_ip)
        emu = emu_gif = None
        if nic_type == "ioemu":
            emu = f"{vif}-emu"
            emu_gif = f"emu{devid}"
            self.ip(self.dom0, "link", "add", emu, "type", "veth", "peer", "name", emu_gif,
                    "netns", gns)
            self.ip(gns, "link", "set", emu_gif, "address", mac)
            self.ip(gns, "link", "set", emu_gif, "up")

        be = f"/local/domain/0/backend/vif/{domid}/{devid}"
        fe = f"/local/domain/{domid}/device/vif/{devid}"
        back = {
            "frontend": fe,
            "frontend-id": str(domid),
            "online": "1",
            "state": "2",            # InitWait: when libxl runs the script
        }
        if script is not None:
            back["script"] = script
        if vifname is not None:
            back["vifname"] = vifname
        back["mac"] = mac
        if ip is not None:
            back["ip"] = ip
        if gatewaydev is not None:
            back["gatewaydev"] = gatewaydev
        if rate is not None:
            back["rate"] = rate
        if mtu is not None and mtu != 1500:
            back["mtu"] = str(mtu)
        if bridge is not None:
            back["bridge"] = bridge
        back["handle"] = str(devid)
        back["type"] = "vif_ioemu" if nic_type == "ioemu" else "vif"
        back["hotplug-status"] = ""
        back.update(extra_backend or {})
        front = {
            "backend": be,
            "backend-id": "0",
            "state": "1",
            "handle": str(devid),
            "mac": mac,
        }
        if self.xs.read(f"/local/domain/{domid}/name") is None:
            self.xs.write(f"/local/domain/{domid}/name", f"guest{domid}")
            self.xs.write(f"/local/domain/{domid}/domid", str(domid))
            # libxl's /vm/<uuid> (vif-openvswitch reads the guest's name and uuid there)
            uuid = self.vm_uuid(domid)
            self.xs.write(f"/local/domain/{domid}/vm", f"/vm/{uuid}")
            self.xs.write(f"/vm/{uuid}/name", f"guest{domid}")
            self.xs.write(f"/vm/{uuid}/uuid", uuid)
        for k, v in back.items():
            self.xs.write(f"{be}/{k}", v)
        for k, v in front.items():
            self.xs.write(f"{fe}/{k}", v)

        g = Guest(domid=domid, devid=devid, ns=gns, vif=vif, guest_if=gif, mac=mac, ip=gip,
                  backend=be, frontend=fe, xenbus_path=f"backend/vif/{domid}/{devid}",
                  nic_type=nic_type, emu=emu, emu_guest_if=emu_gif, vifname=vifname,
                  extra={"gatewaydev": gatewaydev, "bridge": bridge, "ip": ip, "mtu": mtu})
        self.guests[(domid, devid)] = g
        return g

    def remove_guest_link(self, domid: int, devid: int = 0) -> None:
        """Delete the dom0 end(s) of a guest NIC, as netback does on teardown."""
        g = self.guests[(domid, devid)]
        for name in (g.vifname, g.vif, g.emu):
            if name and self.link(name) is not None:
                self.ip(self.dom0, "link", "del", name, check=False)

    def remove_guest(self, domid: int, devid: int = 0) -> None:
        """Undo add_guest: the NIC's links and xenstore nodes; the guest's namespace and domain once it has no NIC."""
        self.remove_guest_link(domid, devid)
        g = self.guests.pop((domid, devid))
        self.xs.rm(g.backend)
        self.xs.rm(g.frontend)
        if any(d == domid for d, _ in self.guests):
            return
        vm = self.xs.read(f"/local/domain/{domid}/vm")
        self.xs.rm(f"/local/domain/{domid}")
        if vm:
            self.xs.rm(vm)
        if g.ns in self._namespaces:
            _run(["ip", "netns", "delete", g.ns], check=False)
            self._namespaces.remove(g.ns)

    def add_uplink(self, name: str, subnet: int, lan_name: str | None = None) -> str:
        """Another plain dom0 uplink *name* (no bridge): ``10.<k>.<subnet>.2/24``, the lan end ``.1``.

        What a host with a second NIC has before network-bridge runs; no default route.
        Returns the lan end's address (the "router" of that subnet).
        """
        lan_name = lan_name or f"lan{subnet}"
        self.ip(self.lan, "link", "add", lan_name, "type", "veth", "peer", "name", name, "netns", self.dom0)
        self.ip(self.lan, "addr", "add", f"10.{self.k}.{subnet}.1/24", "dev", lan_name)
        self.ip(self.lan, "link", "set", lan_name, "up")
        self.ip(self.dom0, "addr", "add", f"10.{self.k}.{subnet}.2/24", "dev", name)
        self.ip(self.dom0, "link", "set", name, "up")
        return f"10.{self.k}.{subnet}.1"

    # ---------------------------------------------------------- hotplug run
    def env_for(self, domid: int, devid: int = 0, *, script: str | None = None,
                type_if: str = "vif", extra: dict | None = None) -> dict:
        """libxl's environment for a hotplug script (libxl_linux.c), plus test knobs."""
        be = f"/local/domain/0/backend/vif/{domid}/{devid}"
        if script is None:
            script = self.xs.read(f"{be}/script") or ""
        gatewaydev = self.xs.read(f"{be}/gatewaydev")
        env = {
            "PATH": LIBXL_PATH,
            "script": script,
            "XENBUS_TYPE": "vif",
            "XENBUS_PATH": f"backend/vif/{domid}/{devid}",
            "XENBUS_BASE_PATH": "backend",
            "netdev": gatewaydev or "",
            "vif": f"vif{domid}.{devid}",
            "XENSTORED_PATH": self.xs.path,
            "XENSCRIPTS_LOG_FILE": self.log_file,
            "XENSCRIPTS_LOCK_DIR": self.lock_dir,
            # what runs remember (firewall records, started networks): this host's own, never the
            # machine's /run/xenscripts, which every other test host (and process) would share
            "XENSCRIPTS_STATE_DIR": os.path.join(self.workdir, "run"),
            # our thin clients talk to the test daemon, when the suite runs one, and never
            # to a daemon the machine itself may run
            "XENSCRIPTS_SOCKET": os.environ.get("XENSCRIPTS_SOCKET", f"{self.workdir}/no-hotplugd.sock"),
        }
        if type_if == "tap":
            env["INTERFACE"] = f"vif{domid}.{devid}-emu"
        if extra:
            env.update(extra)
        return env

    def run_hotplug(self, argv0: list[str] | str, domid: int, devid: int = 0,
                    command: str = "online", *, type_if: str = "vif", extra_args=(),
                    extra_env: dict | None = None,
                    timeout: float = HOTPLUG_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a hotplug script in dom0 exactly as libxl does.

        argv ``[*argv0, command, "type_if=<type_if>", *extra_args]``, stdin
        /dev/null, env ``env_for()`` (the ``script`` variable names the last
        element of ``argv0``).  On timeout the process group is killed and a
        CompletedProcess with returncode -9 is returned (libxl's SIGKILL).
        """
        argv0 = [argv0] if isinstance(argv0, str) else list(argv0)
        argv = argv0 + [command, f"type_if={type_if}", *extra_args]
        env = self.env_for(domid, devid, script=argv0[-1], type_if=type_if, extra=extra_env)
        cmd = ["ip", "netns", "exec", self.dom0, *argv]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            out, err = p.communicate()
            err += f"\n[simhost] killed after {timeout}s (libxl hotplug timeout)"
            return subprocess.CompletedProcess(cmd, -9, out, err)
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    # ---------------------------------------------------------- inspection
    def ns(self, name: str) -> str:
        """Full namespace name for a short one: "lan", "dom0", "g<domid>" or a full name."""
        if name.startswith(self.prefix):
            return name
        if name in ("lan", "dom0") or name.startswith("g"):
            return self.prefix + name
        raise KeyError(name)

    def ip(self, ns: str, *args: str, check: bool = True,
           timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
        """``ip -n <ns> args...`` (no mount namespace needed: cheaper than sh())."""
        return _run(["ip", "-n", ns, *args], check=check, timeout=timeout)

    def sh(self, ns: str, *cmd: str, check: bool = True, timeout: float = CMD_TIMEOUT,
           env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a command inside a namespace (``ip netns exec``, own /sys).

        A single argument containing a space is run with ``sh -c``.
        """
        if len(cmd) == 1 and " " in cmd[0]:
            cmd = ("sh", "-c", cmd[0])
        return _run(["ip", "netns", "exec", ns, *cmd], check=check, timeout=timeout, env=env)

    def links(self, ns: str | None = None) -> list[dict]:
        cp = self.ip(ns or self.dom0, "-j", "-d", "link", "show")
        return json.loads(cp.stdout or "[]")

    def link(self, name: str, ns: str | None = None) -> dict | None:
        for link in self.links(ns):
            if link.get("ifname") == name:
                return link
        return None

    def addrs(self, ns: str | None = None) -> list[dict]:
        return json.loads(self.ip(ns or self.dom0, "-j", "addr", "show").stdout or "[]")

    def routes(self, ns: str | None = None, *args: str) -> list[dict]:
        return json.loads(self.ip(ns or self.dom0, "-j", "route", "show", *args).stdout or "[]")

    def bridge_ports(self) -> list[dict]:
        cp = _run(["bridge", "-n", self.dom0, "-j", "link", "show"])
        return json.loads(cp.stdout or "[]")

    def master_of(self, name: str) -> str | None:
        link = self.link(name)
        return link.get("master") if link else None

    def ping(self, src_ns: str, dst_ip: str, count: int = 1, timeout: float = 2) -> bool:
        """True when ``count`` echo replies arrive within ``timeout`` seconds."""
        t = max(1, round(timeout))
        cp = _run(["ip", "netns", "exec", src_ns, "ping", "-n", "-q", "-c", str(count),
                   "-i", "0.2", "-w", str(t), "-W", "1", dst_ip],
                  check=False, timeout=t + 5)
        return cp.returncode == 0

    # ---------------------------------------------------------- teardown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _leak_lock:
            if self in _open_hosts:
                _open_hosts.remove(self)
        errors = []
        # Guests and lan first, dom0 last; deleting a netns destroys its veths.
        for name in reversed(self._namespaces):
            error = delete_namespace(name)
            if error is not None:
                errors.append(f"{name}: {error}")
        self._namespaces.clear()
        if os.path.isdir(self.lock_dir):
            left = []
            for root, _dirs, files in os.walk(self.lock_dir):
                left += [os.path.join(root, f) for f in files]
            if left:
                with _leak_lock:
                    _lock_leaks.extend(left)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise SimHostError("could not delete namespaces: " + "; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimHost(tag={self.tag!r}, k={self.k}, namespaces={self._namespaces})"
