"""hotplugd's nft monitor reads nf_tables events: which deletions are losses of ours (no root, no kernel).

The events are nf_tables' own message layout (nlmsghdr, nfgenmsg, the table
name attribute), written to a datagram socket the parser reads as it reads
the netlink socket.
"""

from __future__ import annotations

import socket
import struct

import pytest

from xenscripts.firewall import monitor

DELTABLE, DELCHAIN, DELRULE, DELSET, DELSETELEM = 2, 5, 8, 11, 14
FAMILY = {"inet": 1, "ip": 2, "arp": 3, "bridge": 7}


def event(kind: int, family: str, table: str) -> bytes:
    name = table.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(name), 1) + name + b"\0" * (-len(name) % 4)
    body = struct.pack("=BBH", FAMILY[family], 0, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | kind, 0, 0, 0) + body


@pytest.mark.parametrize(("events", "losses"), [
    ([(DELRULE, "bridge", "xenscripts")] * 3 + [(DELCHAIN, "bridge", "xenscripts"),
                                                (DELTABLE, "bridge", "xenscripts"), (DELTABLE, "ip", "filter")],
     ["table ip filter", "table bridge xenscripts"]),                     # nft flush ruleset
    ([(DELRULE, "inet", "xenscripts")] * 4, ["rules of table inet xenscripts"]),  # nft flush table
    ([(DELSET, "arp", "xenscripts")], ["rules of table arp xenscripts"]),
    ([(DELRULE, "ip", "filter"), (DELCHAIN, "ip", "filter")], []),       # every offline: a vif's compat
    ([(DELSETELEM, "bridge", "xenscripts")], []),                         # every offline: a vif's elements
    ([(DELTABLE, "bridge", "other"), (DELRULE, "inet", "filter")], []),  # not ours
])
def test_which_deletions_are_losses(events, losses):
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with reader, writer:
        reader.setblocking(False)
        half = len(events) // 2  # two reads, as a transaction's events may come
        writer.send(b"".join(event(*e) for e in events[:half]))
        writer.send(b"".join(event(*e) for e in events[half:]))
        assert monitor._losses(reader) == losses
