"""pyroute2 for a one-shot run, without its package ``__init__`` (which imports every netlink family it knows).

``import pyroute2.iproute`` runs ``pyroute2/__init__.py`` first, and that
imports conntrack, ndb, ipdb, devlink, wireless, ... (~170 ms of a cold
run's ~300). ``lite()`` puts the package in ``sys.modules`` unexecuted, so
each run loads only the submodules it uses; a name asked of the package
itself (``from pyroute2 import IPRoute``) comes from its submodule, and any
other name loads the whole ``__init__`` into it after all. hotplugd never
calls it: its warm-up loads everything once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

_NAMES = {"IPRoute": "pyroute2.iproute.linux", "Conntrack": "pyroute2.conntrack",
          "NetlinkError": "pyroute2.netlink.exceptions"}


def lite() -> None:
    """Make later pyroute2 imports load only what they name (nothing if pyroute2 is loaded or absent)."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)

    loader = spec.loader

    def attribute(name: str) -> object:
        if name in _NAMES:
            return getattr(importlib.import_module(_NAMES[name]), name)
        if name.startswith("__") or importlib.util.find_spec(f"pyroute2.{name}") is not None:
            raise AttributeError(name)  # a submodule (``from pyroute2 import config``): the import system loads it
        del package.__dict__["__getattr__"]
        loader.exec_module(package)  # the whole package after all
        return getattr(package, name)

    package.__dict__["__getattr__"] = attribute
    sys.modules["pyroute2"] = package



