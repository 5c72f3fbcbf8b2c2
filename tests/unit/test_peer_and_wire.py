"""hotplugd's peer check and wire format, without a daemon."""

from __future__ import annotations

import os
import socket

import pytest

from xenscripts.daemon import peer
from xenscripts.entry import wire


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_peer_with_our_capabilities_may_have_work_done(pair):
    mine = peer.capabilities("self")
    reason = peer.refusal(pair[0], mine)
    assert reason is None or "uid" in reason  # not root: refused by uid, never by capabilities


def test_a_peer_lacking_a_capability_is_refused(pair, monkeypatch):
    monkeypatch.setattr(peer, "capabilities", lambda pid: 0)
    reason = peer.refusal(pair[0], 1 << 12)
    assert reason is not None and ("lacks capabilities" in reason or "not root" in reason)


def test_without_so_peerpidfd_the_start_time_check_is_used(pair, monkeypatch):
    monkeypatch.setattr(peer, "SO_PEERPIDFD", 0x7FFF)  # an option no kernel knows
    seen = []
    real = peer._start_time
    monkeypatch.setattr(peer, "_start_time", lambda pid: seen.append(pid) or real(pid))
    assert peer.peer_capabilities(pair[0], os.getpid()) == peer.capabilities("self")
    assert seen == [os.getpid(), os.getpid()]


def test_request_round_trip():
    payload = wire.encode_request("vif-bridge", ["/x/vif-custom", "online"], {"vif": "vif1.0", "A": "b=c"}, 1.5, 9.25)
    assert wire.decode_request(payload) == ("vif-bridge", ["/x/vif-custom", "online"],
                                            {"vif": "vif1.0", "A": "b=c"}, 1.5, 9.25)


@pytest.mark.parametrize("payload", [b"", b"XS1\x003\x00a", b"XS2\x00x\x001\x00c\x001\x00a", b"XS2\x001\x001\x00c\x005\x00a",
                                     b"XS2\x001\x001\x00c\x001\x00a\x00noequals"])
def test_malformed_requests_are_value_errors(payload):
    with pytest.raises(ValueError):
        wire.decode_request(payload)


def test_connect_unix_waits_out_a_full_backlog_and_gives_up_at_its_time(tmp_path):
    import threading
    import time

    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(0)
    queued = []
    try:
        while True:  # fill the backlog: the next connect is EAGAIN
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break
            queued.append(c)
        late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with pytest.raises(TimeoutError):
            wire.connect_unix(late, path, time.monotonic() + 0.1)
        late.close()
        threading.Timer(0.1, lambda: server.accept()[0].close()).start()  # a place frees up
        waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wire.connect_unix(waiting, path, time.monotonic() + 5)
        waiting.close()
    finally:
        for c in queued:
            c.close()
        server.close()
