"""An attacker's toolkit for the simulated host: frames built byte by byte, sent raw, looked for at the victim.

The richer sibling of ``probe`` (which vif-openvswitch's tests use): any destination, VLAN tags, IPv6
extension headers, neighbour discovery, and observers that are UDP sockets as well as packet sockets.

``Frame`` builders (Ethernet, 802.1Q/802.1ad tags, ARP, IPv4 with
fragments, IPv6 with extension headers, UDP, ICMPv6 neighbour discovery)
are pure. ``send`` writes frames from a guest's NIC through an AF_PACKET
socket (no reply needed, nothing of the guest's own stack in the way).
``Watch`` runs an observer in a namespace while probes are sent: a packet
socket on a NIC (what reached the victim's wire) and UDP sockets (what
dom0's stack accepted); each probe carries a marker the observer looks for.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys

from .probe import checksum, mac_bytes

BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"


def ether(dst: str, src: str, ethertype: int, payload: bytes, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """An Ethernet frame; *tags* are ``(tpid, vid)`` pairs, outermost first (0x8100 802.1Q, 0x88a8 802.1ad)."""
    head = mac_bytes(dst) + mac_bytes(src)
    for tpid, vid in tags:
        head += struct.pack("!HH", tpid, vid)
    return head + struct.pack("!H", ethertype) + payload


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    """An Ethernet/IPv4 ARP body (op 1 request, 2 reply)."""
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac_bytes(sha), socket.inet_aton(spa), mac_bytes(tha),
                       socket.inet_aton(tpa))


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header + payload with checksum 0 (IPv4; ``ipv6()`` fills in the checksum)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0x4242, offset: int = 0,
         more: bool = False) -> bytes:
    """An IPv4 packet (no options); *offset* in bytes (a multiple of 8) and *more* make a fragment."""
    flags = (0x2000 if more else 0) | (offset // 8)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + payload


def checksummed(src: str, dst: str, proto: int, upper: bytes, at: int) -> bytes:
    """An IPv6 upper-layer message (UDP: checksum *at* 6, ICMPv6: 2) with its checksum over the pseudo-header."""
    pseudo = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    pseudo += struct.pack("!I3xB", len(upper), proto)
    zeroed = upper[:at] + b"\0\0" + upper[at + 2:]
    return zeroed[:at] + struct.pack("!H", checksum(pseudo + zeroed) or 0xFFFF) + zeroed[at + 2:]


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 255) -> bytes:
    """An IPv6 packet; *payload* is any extension headers followed by the upper-layer message."""
    return (struct.pack("!IHBB", 0x60000000, len(payload), next_header, hop_limit)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram in IPv6 (checksum filled in)."""
    return ipv6(src, dst, 17, checksummed(src, dst, 17, udp(sport, dport, payload), 6), hop_limit=64)


def icmp6(src: str, dst: str, message: bytes, before: bytes = b"", first: int = 58) -> bytes:
    """An ICMPv6 *message* in IPv6 (checksum filled in), after extension headers *before* (first: their type)."""
    return ipv6(src, dst, first if before else 58, before + checksummed(src, dst, 58, message, 2))


def fragment_header(next_header: int, offset: int = 0, more: bool = False, ident: int = 0x4242) -> bytes:
    return struct.pack("!BBHI", next_header, 0, (offset // 8) << 3 | int(more), ident)


def routing_header(next_header: int, via: str) -> bytes:
    """A type-0-shaped routing header with one segment left (dropped by everyone who looks)."""
    return struct.pack("!BBBBI", next_header, 2, 0, 1, 0) + socket.inet_pton(socket.AF_INET6, via)


def icmpv6(kind: int, code: int, body: bytes) -> bytes:
    return struct.pack("!BBH", kind, code, 0) + body


def router_advertisement(prefix: str, mac: str) -> bytes:
    """An RA announcing *prefix*/64 (autonomous, on-link) and a default route, with *mac* as source option."""
    ra = struct.pack("!BBHII", 64, 0, 1800, 0, 0)
    pio = struct.pack("!BBBBIII16s", 3, 4, 64, 0xC0, 86400, 14400, 0, socket.inet_pton(socket.AF_INET6, prefix))
    return icmpv6(134, 0, ra + pio + struct.pack("!BB6s", 1, 1, mac_bytes(mac)))


def neighbour_advert(target: str, mac: str, override: bool = True, solicited: bool = False) -> bytes:
    """An NA for *target* with *mac* as its target link-layer option."""
    flags = (0x20000000 if override else 0) | (0x40000000 if solicited else 0)
    return icmpv6(136, 0, struct.pack("!I16sBB6s", flags, socket.inet_pton(socket.AF_INET6, target), 2, 1,
                                      mac_bytes(mac)))


def link_local(mac: str) -> str:
    """The EUI-64 link-local address of *mac* (what a guest's kernel gives its NIC)."""
    octets = bytearray(mac_bytes(mac))
    octets[0] ^= 0x02
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])))


def multicast_mac(address: str) -> str:
    """The Ethernet group address an IPv6 multicast *address* is sent to (33:33 + its last 4 bytes)."""
    tail = socket.inet_pton(socket.AF_INET6, address)[-4:]
    return "33:33:" + ":".join(f"{b:02x}" for b in tail)


def solicited_node(address: str) -> str:
    """The solicited-node multicast address of *address* (where neighbour solicitations for it go)."""
    tail = socket.inet_pton(socket.AF_INET6, address)[-3:]
    return str(ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + tail))


def options_header(next_header: int) -> bytes:
    """An 8-byte hop-by-hop or destination options header holding only padding (PadN)."""
    return struct.pack("!BBBB4x", next_header, 0, 1, 4)


def neighbour_solicit(target: str, source_mac: str | None = None, nonce: bytes | None = None) -> bytes:
    """An NS for *target*, with *source_mac* as its source link-layer option or a 6-byte *nonce* option (DAD)."""
    body = struct.pack("!I16s", 0, socket.inet_pton(socket.AF_INET6, target))
    if source_mac:
        body += struct.pack("!BB6s", 1, 1, mac_bytes(source_mac))
    if nonce is not None:
        body += struct.pack("!BB6s", 14, 1, nonce)
    return icmpv6(135, 0, body)


def redirect6(target: str, destination: str, tail: bytes = b"") -> bytes:
    """An ICMPv6 redirect: *destination* is better reached through *target* (*tail*: options)."""
    return icmpv6(137, 0, struct.pack("!I16s16s", 0, socket.inet_pton(socket.AF_INET6, target),
                                      socket.inet_pton(socket.AF_INET6, destination)) + tail)


def icmp4(kind: int, code: int, body: bytes) -> bytes:
    """An ICMP (IPv4) message with its checksum."""
    head = struct.pack("!BBH", kind, code, 0)
    return head[:2] + struct.pack("!H", checksum(head + body)) + body


# ------------------------------------------------------------------ running them in namespaces
FORGED_MAC = "00:16:3e:66:66:66"  # a MAC no guest has


def marked(name: str) -> bytes:
    """A probe's payload: its name, to be found in what the victim captures."""
    return f"XSP-{name}-XSP".encode() * 2


def udp4(name: str, src_mac: str, src: str, dst_mac: str, dst: str, sport: int = 40000, dport: int = 9999,
         tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """A marked UDP datagram over IPv4 in an Ethernet frame (behind VLAN *tags*, if any)."""
    return ether(dst_mac, src_mac, 0x0800, ipv4(src, dst, 17, udp(sport, dport, marked(name))), tags)


def udp6_frame(name: str, src_mac: str, src: str, dst: str, dst_mac: str, sport: int = 40000,
               dport: int = 9999) -> bytes:
    """A marked UDP datagram over IPv6 in an Ethernet frame."""
    return ether(dst_mac, src_mac, 0x86DD, udp6(src, dst, sport, dport, marked(name)))


def forgeries(g1, g2, k: int) -> dict[str, bytes]:
    """What every antispoof (Linux bridge and Open vSwitch alike) must stop from guest *g1* (``mac``, ``ip``)
    towards *g2* on host subnet *k*: forged IPv4/IPv6 sources and MACs, DHCP and DHCPv6 answers from any port,
    router advertisements (whole, and behind a fragment header), tagged frames and other ethertypes."""
    forged_ip, g2_v6, ll1 = f"10.{k}.0.99", f"fd00:{k}::12", link_local(g1.mac)

    def v6(name: str, src: str, dst: str, dst_mac: str, sport: int = 40000, dport: int = 9999) -> bytes:
        return udp6_frame(name, g1.mac, src, dst, dst_mac, sport, dport)

    advert = router_advertisement(f"2001:db8:{k}::", g1.mac)
    return {
        "forged-v4-src": udp4("forged-v4-src", g1.mac, forged_ip, g2.mac, g2.ip),
        "forged-v4-src-claiming-g2": udp4("forged-v4-src-claiming-g2", g1.mac, g2.ip, g2.mac, g2.ip),
        "forged-v4-fragment": ether(g2.mac, g1.mac, 0x0800, ipv4(forged_ip, g2.ip, 17, marked("forged-v4-fragment"),
                                                                 offset=8)),
        "forged-v6-src": v6("forged-v6-src", f"fd00:{k}::99", g2_v6, g2.mac),
        "forged-mac": udp4("forged-mac", FORGED_MAC, g1.ip, g2.mac, g2.ip),
        "dhcp-reply-1067-to-68": udp4("dhcp-reply-1067-to-68", g1.mac, g1.ip, BROADCAST, "255.255.255.255", 1067, 68),
        "dhcp-reply-67-to-68": udp4("dhcp-reply-67-to-68", g1.mac, g1.ip, BROADCAST, "255.255.255.255", 67, 68),
        "dhcpv6-reply-to-546": v6("dhcpv6-reply-to-546", ll1, ALL_NODES, ALL_NODES_MAC, 547, 546),
        "dhcpv6-reply-1547-to-546": v6("dhcpv6-reply-1547-to-546", ll1, ALL_NODES, ALL_NODES_MAC, 1547, 546),
        "router-advert": ether(ALL_NODES_MAC, g1.mac, 0x86DD, icmp6(ll1, ALL_NODES, advert + marked("router-advert"))),
        "router-advert-in-fragment": ether(ALL_NODES_MAC, g1.mac, 0x86DD, icmp6(
            ll1, ALL_NODES, advert + marked("router-advert-in-fragment"), before=fragment_header(58), first=44)),
        "vlan-8021q-forged-inner": udp4("vlan-8021q-forged-inner", g1.mac, forged_ip, g2.mac, g2.ip,
                                        tags=((0x8100, 5),)),
        "vlan-8021ad-forged-inner": udp4("vlan-8021ad-forged-inner", g1.mac, forged_ip, g2.mac, g2.ip,
                                         tags=((0x88A8, 5), (0x8100, 6))),
        "vlan-8021q-own-inner": udp4("vlan-8021q-own-inner", g1.mac, g1.ip, g2.mac, g2.ip, tags=((0x8100, 0),)),
        "other-ethertype": ether(g2.mac, g1.mac, 0x88B5, marked("other-ethertype")),
    }


_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frames = [bytes.fromhex(h) for h in sys.argv[3:]]
for _ in range(int(sys.argv[2])):
    for f in frames:
        s.send(f)
"""

_WATCH = r"""
import json, select, socket, sys, time
seconds, specs, markers = float(sys.argv[1]), json.loads(sys.argv[2]), [m.encode() for m in sys.argv[3:]]
socks = {}
for spec in specs:
    kind, arg = spec.split("=", 1)
    if kind == "packet":
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
        s.bind((arg, 0))
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", int(arg)))
    s.setblocking(False)
    socks[s] = spec
print("ready", flush=True)
seen = {}
deadline, wanted = time.monotonic() + seconds, [*socks, sys.stdin]
while time.monotonic() < deadline:
    ready, _, _ = select.select(wanted, [], [], max(0.0, deadline - time.monotonic()))
    for s in ready:
        if s is sys.stdin:  # told to stop (or the caller went away): what is still on its way, then done
            wanted.remove(s)
            deadline = min(deadline, time.monotonic() + 0.3)
            continue
        try:
            data = s.recv(65535)
        except BlockingIOError:
            continue
        for m in markers:
            if m in data:
                seen.setdefault(m.decode(), []).append(socks[s])
print(json.dumps(seen), flush=True)
"""


def send(ns: str, ifname: str, frames: list[bytes], copies: int = 3) -> None:
    """Write *frames* (each *copies* times) from *ifname* in namespace *ns*, raw."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", _SEND, ifname, str(copies), *(f.hex() for f in frames)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


class Watch:
    """An observer in namespace *ns*: ``packet=<ifname>`` and ``udp=<port>`` specs, and the markers it looks for.

    It listens from its start until ``seen()`` (plus 0.3 s for what is still on its way), at most *seconds*.
    """

    def __init__(self, ns: str, specs: list[str], markers: list[str], seconds: float = 60.0) -> None:
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", _WATCH, str(seconds), json.dumps(specs), *markers]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"observer in {ns} did not start: {line}{self.proc.stderr.read() if self.proc.stderr else ''}")

    def seen(self) -> dict[str, list[str]]:
        """Marker -> the specs that saw it (stops the observer)."""
        out, err = self.proc.communicate("stop\n", timeout=90)
        if self.proc.returncode != 0:
            raise RuntimeError(f"observer failed: {err}")
        return json.loads(out.strip().splitlines()[-1])
