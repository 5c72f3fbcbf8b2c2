"""Bridge ports: put a vif on its bridge the way upstream does, idempotently."""

from __future__ import annotations

from collections.abc import Callable

from ..core.errors import HotplugError
from .link import DUMMY_MAC, Link, Net, Undo


def ensure_bridge_port(net: Net, dev: Link, bridge: Link, mtu: int | None, undo: Undo,
                       debug: Callable[[str], None], before_up: Callable[[], None] | None = None) -> bool:
    """Make *dev* an up port of *bridge* with the dummy MAC, no addresses and *mtu*.

    Upstream's order (down, MAC, flush, MTU, enslave, up) is kept, but a step
    whose result is already in place is skipped, so a second run changes
    nothing and never flaps the link. *before_up* (the port's VLANs) runs once
    it is a port, before it comes up, on every run. Returns True if anything changed.
    """
    addresses = net.has_routable_addresses(dev.index)
    wrong_mtu = mtu is not None and dev.mtu != mtu
    rebuild = dev.address != DUMMY_MAC or addresses or wrong_mtu or dev.master != bridge.index
    if rebuild:
        if dev.up:
            net.set_link(dev, state="down")
            undo.push(f"bringing {dev.name} back up", lambda: net.set_link(dev, state="up"))
        if dev.address != DUMMY_MAC:
            _tolerant(lambda: net.set_link(dev, address=DUMMY_MAC), debug)
            undo.push(f"restoring MAC of {dev.name}", lambda: net.set_link(dev, address=dev.address))
        if addresses:
            net.flush_addresses(dev)
        if wrong_mtu:
            debug(f"setting {dev.name} MTU to {mtu}")
            _tolerant(lambda: net.set_link(dev, mtu=mtu), debug)
            undo.push(f"restoring MTU of {dev.name}", lambda: net.set_link(dev, mtu=dev.mtu))
        if dev.master != bridge.index:
            debug(f"adding {dev.name} to bridge {bridge.name}")
            net.set_link(dev, master=bridge.index, master_name=bridge.name)
            undo.push(f"removing {dev.name} from {bridge.name}", lambda: net.set_link(dev, master=dev.master or 0))
        else:
            debug(f"{dev.name} already on bridge {bridge.name}")
    if before_up is not None:
        before_up()
    if rebuild or not dev.up:  # a rebuild took it down, or it was down already
        net.set_link(dev, state="up")
        if not dev.up:
            undo.push(f"bringing {dev.name} down", lambda: net.set_link(dev, state="down"))
        rebuild = True
    return bool(rebuild)


def release_bridge_port(net: Net, dev: Link, bridge: Link | None, debug: Callable[[str], None]) -> None:
    """Take *dev* down and off *bridge* (if it is a port of that bridge)."""
    if dev.up:
        _tolerant(lambda: net.set_link(dev, state="down"), debug)
    if bridge is not None and dev.master == bridge.index:
        debug(f"removing {dev.name} from bridge {bridge.name}")
        _tolerant(lambda: net.set_link(dev, master=0), debug)
    else:
        debug(f"{dev.name} not on bridge {bridge.name if bridge else '(none)'}")


def _tolerant(action: Callable[[], None], debug: Callable[[str], None]) -> None:
    """Run *action*; a failure is logged at debug level (upstream's ``|| true``)."""
    try:
        action()
    except HotplugError as e:
        debug(str(e))
