"""NIC features through pyroute2's ethtool module (the ioctl runs in the caller's namespace)."""

from __future__ import annotations

from typing import Any

from ..core.errors import HotplugError

VLAN_CHALLENGED = "vlan-challenged"


def _features(dev: str) -> tuple[Any, Any]:
    from pyroute2.ethtool import Ethtool

    ethtool = Ethtool()
    try:
        return ethtool, ethtool.get_features(dev)
    except OSError as e:
        ethtool.close()
        raise HotplugError(f"reading ethtool features of {dev}: {e.strerror}") from None


def has_feature(dev: str, name: str) -> bool:
    """True when feature *name* (``vlan-challenged``…) is on for *dev*."""
    ethtool, features = _features(dev)
    ethtool.close()
    feature = features.features.get(name)
    return bool(feature and feature.enable)


def set_tx_checksum(dev: str, on: bool) -> None:
    """``ethtool -K dev tx on|off``: every changeable ``tx-checksum-*`` feature."""
    ethtool, features = _features(dev)
    try:
        for name, feature in features.features.items():
            if name.startswith("tx-checksum") and feature.available:
                feature.enable = on
        ethtool.set_features(dev, features)
    except OSError as e:
        raise HotplugError(f"turning transmit checksum offload {'on' if on else 'off'} on {dev}: "
                           f"{e.strerror}") from None
    finally:
        ethtool.close()
