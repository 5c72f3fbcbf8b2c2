"""Record the netlink dumps the parser tests read: run as root, it builds a throwaway namespace.

``python tests/unit/netlink_dumps/record.py`` writes ``links.hex``, ``addrs.hex``
and ``routes.hex`` here: the kernel's own RTM_NEWLINK/NEWADDR/NEWROUTE bytes
for a bridge with a port (altname, alias, MTU), IPv4/IPv6 addresses and routes
in two tables. Recorded once; the tests never need root.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NS = f"xs-record-{os.getpid()}"
SETUP = """
link add br0 type bridge
link set br0 address 02:00:00:00:00:01 mtu 1400 up
link add vif1.0 type veth peer name eth0
link set vif1.0 master br0 alias guest-one mtu 1400 up
link property add dev vif1.0 altname xenvif
addr add 192.0.2.1/24 dev br0
addr add 192.0.2.9/32 peer 192.0.2.10 dev vif1.0 label vif1.0:a
addr add 2001:db8::1/64 dev br0 valid_lft 1000 preferred_lft 500
route add 198.51.100.0/24 via 192.0.2.254 dev br0 metric 20
route add 203.0.113.0/24 dev br0 table 100 proto static
"""
DUMPS = {"links": (18, 17), "addrs": (22, 20), "routes": (26, 24)}  # RTM_GET*, struct size's family byte


def dump(kind: int) -> bytes:
    """Every reply message of one RTM_GET* dump, as the kernel sent them (NLMSG_DONE cut off)."""
    header = struct.pack("=IHHII", 16 + 16, kind, 0x301, 1, 0)
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)  # big enough for ifinfomsg/ifaddrmsg/rtmsg
    out = b""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
        sock.send(header + body)
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset < len(data):
                length, mtype = struct.unpack_from("=IH", data, offset)
                if mtype == 3:  # NLMSG_DONE
                    return out
                out += data[offset:offset + length]
                offset += (length + 3) & ~3


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--inside":
        for name, (kind, _) in DUMPS.items():
            (HERE / f"{name}.hex").write_text(dump(kind).hex() + "\n")
        sys.exit(0)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for line in filter(None, SETUP.strip().splitlines()):
            subprocess.run(["ip", "-n", NS, *line.split()], check=True)
        subprocess.run(["ip", "netns", "exec", NS, sys.executable, __file__, "--inside"], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
