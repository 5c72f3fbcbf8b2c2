"""One-way probes: raw Ethernet frames sent from one namespace, looked for at another. Standard library only.

A probe needs no reply: it is built by hand (forged MACs and addresses
welcome), sent with an AF_PACKET socket from the attacker's interface, and
counts as *through* when a frame carrying its marker arrives at the victim's
interface. Every probe is broadcast at layer 2, so a switch floods it to
every port that may have it, whatever it has learnt::

    with Capture(victim.ns, victim.guest_if) as seen:
        send(attacker.ns, attacker.guest_if, [udp4(mac, "10.1.0.99", "10.1.0.12", b"p1"), end_frame(mac, ip)])
    assert seen.ended() and not seen.saw(b"p1")

Tests compare against a control run without the protection under test: the
same probes must arrive there.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
import sys
import time
from typing import Self

BROADCAST = "ff:ff:ff:ff:ff:ff"
END = b"xsprobe-end"
_LISTENER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.1)
print("ready", flush=True)
end, deadline, out = sys.argv[2].encode(), time.time() + float(sys.argv[3]), []
while time.time() < deadline:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    out.append(data.hex())
    if end in data:  # a switch may pass the end frame on its fast path ahead of earlier frames
        deadline = min(deadline, time.time() + 0.5)  # that went to its slow path: linger a little
print(" ".join(out))
"""
_FLOODER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
gap, frames = float(sys.argv[2]), [bytes.fromhex(h) for h in sys.stdin.readline().split()]
print("sending", flush=True)
while True:
    for f in frames:
        try:
            s.send(f)
        except OSError:
            pass  # no carrier yet: the vif is still down
        time.sleep(gap)
"""
_SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
gap, frames = float(sys.argv[2]), [bytes.fromhex(h) for h in sys.stdin.read().split()]
for f in frames:
    s.send(f)
    if gap:
        time.sleep(gap)
"""


def mac_bytes(text: str) -> bytes:
    """``00:16:3e:...`` as its six bytes."""
    return bytes.fromhex(text.replace(":", ""))


def ether(src: str, ethertype: int, payload: bytes, dst: str = BROADCAST) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of *data*."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src_mac: str, src_ip: str, dst_ip: str, marker: bytes, sport: int = 40000, dport: int = 40000) -> bytes:
    """A UDP/IPv4 datagram, broadcast at layer 2, its payload *marker*."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(marker), 0) + marker
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                       socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return ether(src_mac, 0x0800, head + udp)


def arp(src_mac: str, sender_ip: str, target_ip: str, marker: bytes, op: int = 2) -> bytes:
    """An ARP reply (op 2) or request (op 1) claiming *sender_ip* is at *src_mac*; *marker* as trailer."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac_bytes(src_mac), socket.inet_aton(sender_ip),
                       b"\0" * 6, socket.inet_aton(target_ip))
    return ether(src_mac, 0x0806, body + marker)


def icmp6(src_mac: str, src_ip: str, icmp_type: int, marker: bytes, dst_ip: str = "ff02::1",
          head: bytes = b"\0" * 12) -> bytes:
    """An ICMPv6 message of *icmp_type* (134: a router advertisement) to *dst_ip*: *head* then *marker*."""
    body = struct.pack("!BBH", icmp_type, 0, 0) + head + marker
    src, dst = ipaddress.IPv6Address(src_ip).packed, ipaddress.IPv6Address(dst_ip).packed
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    head = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst
    return ether(src_mac, 0x86DD, head + body, dst="33:33:00:00:00:01")


def neighbour_advert(src_mac: str, src_ip: str, target: str, marker: bytes) -> bytes:
    """An unsolicited neighbour advertisement: *target* is at *src_mac* (override flag set)."""
    head = struct.pack("!I", 0x20000000) + ipaddress.IPv6Address(target).packed
    head += struct.pack("!BB6s", 2, 1, mac_bytes(src_mac))  # target link-layer address option
    return icmp6(src_mac, src_ip, 136, marker, head=head)


def end_frame(src_mac: str, src_ip: str) -> bytes:
    """The last frame of a run: the sender's own plain UDP, which any lock on its own traffic lets by."""
    return udp4(src_mac, src_ip, "255.255.255.255", END)


def send(ns: str, ifname: str, frames: list[bytes], gap: float = 0.0) -> None:
    """Send *frames* in order from *ifname* in namespace *ns* (*gap* seconds apart)."""
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _SENDER, ifname, str(gap)],
                   input=" ".join(f.hex() for f in frames), text=True, check=True, timeout=60,
                   capture_output=True)


class Capture:
    """Frames arriving at *ifname* in *ns* while the ``with`` block runs (until just after the end frame, or *timeout*)."""

    def __init__(self, ns: str, ifname: str, timeout: float = 5.0) -> None:
        self.argv = ["ip", "netns", "exec", ns, sys.executable, "-c", _LISTENER, ifname, END.decode(),
                     str(timeout)]
        self.frames: list[bytes] = []
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self._proc.kill()
            raise RuntimeError("probe listener did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        try:
            out, _ = self._proc.communicate(timeout=30)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        self.frames = [bytes.fromhex(h) for h in out.split()]

    def saw(self, marker: bytes) -> bool:
        return any(marker in f for f in self.frames)

    def ended(self) -> bool:
        """The end frame arrived (else the run proves nothing about what did not)."""
        return self.saw(END)


class Flood:
    """Send *frames* over and over from *ifname* in *ns* (*gap* seconds apart) while the ``with`` block runs."""

    def __init__(self, ns: str, ifname: str, frames: list[bytes], gap: float = 0.002) -> None:
        self.argv = ["ip", "netns", "exec", ns, sys.executable, "-c", _FLOODER, ifname, str(gap)]
        self.data = " ".join(f.hex() for f in frames)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(self.data + "\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "sending":
            raise RuntimeError("flood sender did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        time.sleep(0.2)  # frames sent just as the block ended are still on their way
        self._proc.kill()
        self._proc.communicate()
