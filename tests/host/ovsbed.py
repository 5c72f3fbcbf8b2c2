"""One simulated host with a real Open vSwitch per test module, reset between tests.

Starting namespaces and the two OVS daemons per test cost seconds each; a
module shares one SimHost (its own xenstored) and one OvsSwitch, and after
every test the guests, their ports and flows, extra bridges and a stopped
switch are put back. Import the fixtures into a test module::

    from tests.host import ovsbed as bed
    ovsbed, simhost, ovs = bed.ovsbed, bed.simhost, bed.ovs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from xensim.host import SimHost
from xensim.ours import our_command
from xensim.ovs import OvsSwitch, ovs_available
from xensim.xenstored import XenstoreServer

BRIDGE = "ovsbr0"
OUR_COOKIES = "cookie=0x7873000000000000/0xffff000000000000"


class OvsBed:
    """The module's host and switch; ``reset()`` puts them back as a fresh test expects."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.switch = self._new_switch()

    def _new_switch(self) -> OvsSwitch:
        switch = OvsSwitch(self.host, name=f"ovs{os.urandom(3).hex()}")
        switch.add_bridge(BRIDGE)
        return switch

    def alive(self) -> bool:
        return self.switch.vsctl("--timeout=2", "br-exists", BRIDGE, check=False).returncode in (0, 2)

    def reset(self) -> None:
        for domid, devid in list(self.host.guests):
            self.host.remove_guest(domid, devid)
        if not self.alive():
            self.switch.stop()
            self.switch = self._new_switch()
            return
        for bridge in self.switch.vsctl("list-br").stdout.split():
            if bridge != BRIDGE:
                self.switch.vsctl("--timeout=10", "del-br", bridge)
        if self.switch.vsctl("br-exists", BRIDGE, check=False).returncode != 0:
            self.switch.add_bridge(BRIDGE)
            return
        for port in self.switch.ports(BRIDGE):
            self.switch.vsctl("--timeout=10", "--if-exists", "del-port", port)
        self.switch.ofctl("del-flows", BRIDGE, OUR_COOKIES)


@pytest.fixture(scope="module")
def ovsbed() -> Iterator[OvsBed]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("host test: needs root and iproute2")
    ok, why = ovs_available()
    if not ok:
        pytest.skip(why)
    workdir = tempfile.mkdtemp(prefix="xs-ovs-")
    xs = XenstoreServer(os.path.join(workdir, "xs.sock")).start()
    try:
        with SimHost(xs) as host:
            bed = OvsBed(host)
            try:
                yield bed
            finally:
                bed.switch.stop()
    finally:
        xs.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def simhost(ovsbed: OvsBed) -> Iterator[SimHost]:
    """The module's host (no Linux bridge), as it was before the test."""
    try:
        yield ovsbed.host
    finally:
        ovsbed.reset()


@pytest.fixture
def ovs(simhost: SimHost, ovsbed: OvsBed) -> OvsSwitch:
    """The module's switch with bridge ovsbr0 (userspace datapath)."""
    return ovsbed.switch


def guest(host: SimHost, domid: int = 1, bridge: str | None = BRIDGE, **kw):
    return host.add_guest(domid, bridge=bridge, script="/etc/xen/scripts/vif-openvswitch", **kw)


def hotplug(host: SimHost, ovs: OvsSwitch, domid: int, command: str = "online", devid: int = 0, *,
            type_if: str = "vif", extra_args=(), extra_env: dict | None = None,
            argv0: list[str] | None = None) -> subprocess.CompletedProcess:
    """Our vif-openvswitch (or *argv0*) as libxl runs it, with the switch's OVS_RUNDIR."""
    env = {"XENSCRIPTS_SYSLOG": "", **ovs.env, **(extra_env or {})}
    return host.run_hotplug(argv0 or our_command("vif-openvswitch"), domid, devid, command, type_if=type_if,
                            extra_args=extra_args, extra_env=env)


def ok(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert cp.returncode == 0, f"exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp
