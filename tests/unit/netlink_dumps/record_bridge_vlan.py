"""Record what iproute2 sends for bridge VLAN filtering: run as root (strace needed), a throwaway namespace.

``python tests/unit/netlink_dumps/record_bridge_vlan.py`` writes
``bridge_vlan.json`` here: for each ``bridge vlan …`` / ``ip link set … type
bridge vlan_filtering N`` command below, the bytes of the netlink request
iproute2 sent (its RTM_SETLINK / RTM_DELLINK / RTM_NEWLINK, not the name
lookups), with the sequence number, port id and ifindex zeroed. The kernel
need not support VLAN filtering: the request is sent before it answers (this
machine's kernel refuses them). tests/unit/test_bridgevlan.py compares the
requests xenscripts sends (pyroute2) with these. Recorded once; the tests
never need root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NS = f"xs-record-vlan-{os.getpid()}"
COMMANDS = [
    "ip link set b0 type bridge vlan_filtering 1",
    "ip link set b0 type bridge vlan_filtering 0",
    "bridge vlan add dev d0 vid 10 pvid untagged",
    "bridge vlan add dev d0 vid 20 pvid untagged",
    "bridge vlan add dev d0 vid 30 pvid untagged",
    "bridge vlan add dev d0 vid 5 pvid untagged",
    "bridge vlan add dev d0 vid 7 untagged",
    "bridge vlan add dev d0 vid 8 untagged",
    "bridge vlan add dev d0 vid 200 untagged",
    "bridge vlan add dev d0 vid 100",
    "bridge vlan add dev d0 vid 110",
    "bridge vlan add dev d0 vid 120",
    "bridge vlan add dev d0 vid 100-110",
    "bridge vlan del dev d0 vid 1",
    "bridge vlan del dev d0 vid 9",
    "bridge vlan del dev d0 vid 10",
    "bridge vlan del dev d0 vid 1-3",
]
_HEX_LINE = re.compile(r"^ \| [0-9a-f]{5}  ([0-9a-f ]{49})")  # strace -e write: offset, 16 bytes, ASCII
_REQUESTS = {16, 17, 19}  # RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK (RTM_GETLINK lookups are left out)


def normalise(message: bytes) -> bytes:
    """Sequence number, port id (nlmsghdr) and ifindex (ifinfomsg) zeroed: they differ per run."""
    return message[:8] + b"\0" * 8 + message[16:20] + b"\0" * 4 + message[24:]


def requests(command: str) -> list[str]:
    """The normalised requests (hex) *command* sent, from strace's dump of every buffer it wrote."""
    cp = subprocess.run(["ip", "netns", "exec", NS, "strace", "-e", "trace=sendmsg,sendto", "-e", "write=all",
                         *command.split()], capture_output=True, text=True, check=False)
    buffers: list[bytes] = []
    for line in cp.stderr.splitlines():
        if line.startswith(("sendmsg(", "sendto(")):
            buffers.append(b"")
        elif (m := _HEX_LINE.match(line)) and buffers:
            buffers[-1] += bytes.fromhex(m.group(1).replace(" ", ""))
    # (``ip link`` first sends an empty RTM_NEWLINK to learn whether the kernel has it: left out too)
    return [normalise(b).hex() for b in buffers
            if len(b) > 32 and int.from_bytes(b[4:6], "little") in _REQUESTS]


if __name__ == "__main__":
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for setup in ("link add b0 type bridge", "link add d0 type veth peer name d1", "link set d0 master b0"):
            subprocess.run(["ip", "-n", NS, *setup.split()], check=True)
        out = {command: requests(command) for command in COMMANDS}
    finally:
        subprocess.run(["ip", "netns", "delete", NS], check=True)
    assert all(len(sent) == 1 for sent in out.values()), out
    (HERE / "bridge_vlan.json").write_text(json.dumps({c: sent[0] for c, sent in out.items()}, indent=1) + "\n")
