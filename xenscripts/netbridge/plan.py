"""network-bridge's planner: pure functions from observed state to a list of steps, each with its undo.

No netlink here: the inputs are ``observe`` dataclasses, the output is data
(``Step``) that ``apply`` executes, ``--dry-run`` prints and the golden-file
tests compare.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..core.errors import InputError
from ..netlink.link import Links
from .observe import Address, NetdevState, Route

VLAN_ALIAS = "xenscripts: network-bridge vlan"   # marks a VLAN device start created, so stop deletes it
VLAN_CHALLENGED_MTU = 1496
_NAME = re.compile(r"[^\s/:]{1,15}")
_VIF = re.compile(r"(vif|tap)\d+\.\d+(-emu)?")


@dataclass(frozen=True)
class Names:
    """Who is who: the netdev the admin names, the bridge, and the NIC's name once bridged."""

    netdev: str
    bridge: str
    vlan: int | None = None
    parent: str | None = None   # with vlan=: the NIC the VLAN device is created on

    @property
    def renames(self) -> bool:
        """The bridge takes the netdev's name, so the NIC becomes ``p<netdev>`` (upstream 4.4)."""
        return self.bridge == self.netdev

    @property
    def nic(self) -> str:
        return f"p{self.netdev}" if self.renames else self.netdev


@dataclass(frozen=True)
class Step:
    """One change: a verb on a device with its arguments, and the step that undoes it."""

    verb: str
    dev: str
    args: dict[str, Any] = field(default_factory=dict)
    undo: Step | None = None

    def describe(self) -> str:
        a = self.args
        text = {
            "create_bridge": lambda: f"create bridge {self.dev} (stp off, forward delay 0, "
                                     f"MAC {a['mac']}, MTU {a['mtu']})",
            "delete_link": lambda: f"delete {self.dev}",
            "create_vlan": lambda: f"create VLAN {a['id']} device {self.dev} on {a['parent']}"
                                   + (f" with MTU {a['mtu']}" if a.get("mtu") else ""),
            "set_tx_offload": lambda: f"turn transmit checksum offload {'on' if a['on'] else 'off'} on {self.dev}",
            "set_up": lambda: f"bring {self.dev} up",
            "set_down": lambda: f"take {self.dev} down",
            "rename": lambda: f"rename {self.dev} to {a['name']}",
            "set_master": lambda: f"add {self.dev} to bridge {a['master']}",
            "set_nomaster": lambda: f"remove {self.dev} from bridge {a['master']}",
            "add_addr": lambda: f"add address {_addr(a).cidr()} to {self.dev}",
            "del_addr": lambda: f"remove address {_addr(a).cidr()} from {self.dev}",
            "add_route": lambda: f"add route {_route(a).describe()} dev {self.dev}",
            "del_route": lambda: f"remove route {_route(a).describe()} dev {self.dev}",
            "keep_slaves": lambda: f"keep bonding slaves {' '.join(a['slaves'])} on {self.dev}",
            "firewall": lambda: f"{'install' if a['starting'] else 'remove'} antispoof rules "
                                f"(FORWARD policy DROP, accept from {self.dev}) for {a['bridge']}",
        }[self.verb]
        return text()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.describe(), "verb": self.verb, "dev": self.dev, "args": self.args}
        if self.undo is not None:
            out["undo"] = self.undo.describe()
        return out


def _addr(args: dict[str, Any]) -> Address:
    return Address(**args["address"])


def _route(args: dict[str, Any]) -> Route:
    return Route(**args["route"])


def _pair(verb: str, dev: str, undo_verb: str, **args: Any) -> Step:
    """A step whose undo is another verb on the same device with the same arguments."""
    return Step(verb, dev, dict(args), Step(undo_verb, dev, dict(args)))


# -------------------------------------------------------------- names
def check_name(what: str, name: str) -> str:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise InputError(f"invalid {what} name {name!r}: 1 to 15 characters, no '/', ':' or spaces")
    return name


def resolve_names(variables: dict[str, str], links: Links) -> Names | None:
    """The names of this run, upstream's defaults and ours (None for ``bridge=null``).

    netdev: argv/env, else ``eth<vifnum>``, else the default route's device (the
    whole name), else eth0. bridge: argv/env, else ``xenbr<vifnum>``, else the
    netdev's own name. When the default route already leaves through a bridge,
    that bridge and its uplink are meant (so a bare stop finds what start built).
    """
    vifnum = variables.get("vifnum") or None
    if vifnum is not None and not vifnum.isdigit():
        raise InputError(f"invalid vifnum {vifnum!r}: expected a number")
    netdev = variables.get("netdev") or None
    bridge = variables.get("bridge") or None
    if bridge == "null":
        return None
    if netdev is None and vifnum is not None:
        netdev = f"eth{vifnum}"
    if bridge is None and vifnum is not None:
        bridge = f"xenbr{vifnum}"
    if netdev is None:
        netdev, found_bridge = _default_netdev(links)
        bridge = bridge or found_bridge
    bridge = bridge or netdev
    vlan = _vlan(variables.get("vlan"))
    parent = None
    if vlan is not None:
        parent, netdev = netdev, f"{netdev}.{vlan}"
        bridge = variables.get("bridge") or (f"xenbr{vifnum}" if vifnum is not None else netdev)
    names = Names(netdev=check_name("netdev", netdev), bridge=check_name("bridge", bridge), vlan=vlan, parent=parent)
    check_name("renamed NIC", names.nic)
    return names


def _default_netdev(links: Links) -> tuple[str, str | None]:
    dev = links.default_dev
    if dev is None:
        return "eth0", None
    link = links.by_name.get(dev)
    if link is None or link.kind != "bridge":
        return dev, None
    ports = [p for p in links.ports_of(dev) if not _VIF.fullmatch(p)]
    if f"p{dev}" in ports or not ports:
        return dev, dev
    return ports[0], dev


def _vlan(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 4094:
        raise InputError(f"invalid vlan {value!r}: expected a VLAN id from 1 to 4094")
    return int(value)


# -------------------------------------------------------------- start
@dataclass(frozen=True)
class StartFacts:
    """What start's planner needs besides the names."""

    links: Links
    netdev: NetdevState | None          # None when the VLAN device is still to be created
    parent: NetdevState | None = None   # the VLAN's parent NIC (vlan= only)
    vlan_challenged: bool = False       # the parent NIC's ethtool feature
    tx_offload_off: bool = False
    antispoof: bool = False


def already_started(names: Names, links: Links) -> bool:
    """True when *bridge* is a bridge that already holds the NIC: start is then a no-op."""
    bridge = links.by_name.get(names.bridge)
    return bridge is not None and bridge.is_bridge and links.master_of(names.nic) == names.bridge


def refuse_start(names: Names, links: Links) -> None:
    """Raise InputError for a start that would break something; nothing has been changed yet."""
    nic_master = links.master_of(names.nic)
    if nic_master and nic_master != names.bridge:
        what = "bridge" if links.by_name[nic_master].is_bridge else "device"
        raise InputError(f"{names.nic} is already a port of {what} {nic_master}; "
                         f"stop that {what} first or choose another netdev")
    netdev = links.by_name.get(names.netdev)
    if netdev is None and names.vlan is None:
        raise InputError(f"netdev {names.netdev} does not exist")
    if names.vlan is not None and netdev is None and names.parent not in links.by_name:
        raise InputError(f"netdev {names.parent} does not exist (VLAN {names.vlan} would be created on it)")
    netdev_master = links.master_of(names.netdev)
    if netdev_master and netdev_master != names.bridge:
        raise InputError(f"{names.netdev} is already a port of bridge {netdev_master}; stop that bridge first")
    if netdev is not None and netdev.kind == "bridge":
        raise InputError(f"netdev {names.netdev} is a bridge; name the physical NIC with netdev=")
    if names.renames and names.nic in links.by_name:
        raise InputError(f"{names.nic} exists already; cannot rename {names.netdev} to it")
    if not names.renames and names.bridge in links.by_name:
        raise InputError(f"{names.bridge} exists already and does not hold {names.netdev}")


def plan_start(names: Names, facts: StartFacts) -> list[Step]:
    """The steps that bridge *names.netdev*, in order, each with its undo."""
    steps: list[Step] = []
    if facts.netdev is None:
        assert facts.parent is not None and names.vlan is not None
        mtu = VLAN_CHALLENGED_MTU if facts.vlan_challenged else None
        steps.append(Step("create_vlan", names.netdev, {"parent": names.parent, "id": names.vlan, "mtu": mtu,
                                                        "alias": VLAN_ALIAS}, Step("delete_link", names.netdev)))
        nic = NetdevState(link=replace(facts.parent.link, name=names.netdev, mtu=mtu or facts.parent.link.mtu,
                                       up=False, master=None, kind="vlan"))
    else:
        nic = facts.netdev
    link = nic.link
    if facts.tx_offload_off:
        steps.append(Step("set_tx_offload", names.netdev, {"on": False}, Step("set_tx_offload", names.netdev, {"on": True})))
    building = f"tmp{names.netdev}"[:15] if names.renames else names.bridge
    if building in facts.links.by_name:
        raise InputError(f"{building} exists already; remove it first")
    steps.append(Step("create_bridge", building, {"mac": link.address, "mtu": link.mtu}, Step("delete_link", building)))
    steps += _take_off(names.netdev, nic)
    if names.renames:
        if link.up:
            steps.append(_pair("set_down", names.netdev, "set_up"))
        steps.append(Step("rename", names.netdev, {"name": names.nic}, Step("rename", names.nic, {"name": names.netdev})))
        steps.append(Step("rename", building, {"name": names.bridge}, Step("rename", names.bridge, {"name": building})))
    steps.append(_pair("set_master", names.nic, "set_nomaster", master=names.bridge))
    if names.renames or not link.up:
        steps.append(_pair("set_up", names.nic, "set_down"))
    steps.append(_pair("set_up", names.bridge, "set_down"))
    steps += _put_on(names.bridge, nic, names.netdev)
    if nic.slaves:
        steps.append(Step("keep_slaves", names.nic, {"slaves": list(nic.slaves)}))
    if facts.antispoof:
        steps.append(_firewall(names, True))
    return steps


def _firewall(names: Names, starting: bool) -> Step:
    return Step("firewall", names.nic, {"bridge": names.bridge, "starting": starting},
                Step("firewall", names.nic, {"bridge": names.bridge, "starting": not starting}))


def _take_off(dev: str, state: NetdevState) -> list[Step]:
    """Remove *state*'s movable routes (gateway routes first) and addresses (secondaries first)."""
    routes = sorted((r for r in state.routes if r.movable), key=lambda r: r.gateway is None)
    addrs = sorted((a for a in state.addresses if a.movable), key=lambda a: not a.secondary)
    return ([_pair("del_route", dev, "add_route", route=asdict(r)) for r in routes]
            + [_pair("del_addr", dev, "add_addr", address=asdict(a)) for a in addrs])


def _put_on(dev: str, state: NetdevState, old_name: str) -> list[Step]:
    """Add *state*'s movable addresses (primaries first, labels renamed) and routes (gateway routes last)."""
    addrs = sorted((a for a in state.addresses if a.movable), key=lambda a: a.secondary)
    routes = sorted((r for r in state.routes if r.movable), key=lambda r: r.gateway is not None)
    return ([_pair("add_addr", dev, "del_addr", address=asdict(_relabel(a, old_name, dev))) for a in addrs]
            + [_pair("add_route", dev, "del_route", route=asdict(r)) for r in routes])


def _relabel(addr: Address, old: str, new: str) -> Address:
    """``eth0:1`` on eth0 becomes ``xenbr0:1`` on xenbr0 (dropped if too long)."""
    if addr.label is None or old == new:
        return addr
    label = new + addr.label[len(old):] if addr.label.startswith(old) else new
    return replace(addr, label=label if len(label) <= 15 else new)


# -------------------------------------------------------------- stop
@dataclass(frozen=True)
class StopFacts:
    """What stop's planner needs: the bridge and the NIC as they are now."""

    bridge: NetdevState
    nic: NetdevState
    force: bool = False
    delete_vlan: bool = False
    tx_offload_off: bool = False
    antispoof: bool = False


def guest_ports(names: Names, bridge: NetdevState) -> list[str]:
    return [p for p in bridge.ports if p != names.nic]


def plan_stop(names: Names, facts: StopFacts) -> list[Step]:
    """The exact reverse of start: addresses and routes back on the NIC, names back, bridge gone."""
    others = guest_ports(names, facts.bridge)
    if others and not facts.force:
        raise InputError(f"bridge {names.bridge} still has guest ports: {' '.join(others)}; "
                         "shut those guests down first, or stop with force=yes")
    steps: list[Step] = []
    if facts.antispoof:
        steps.append(_firewall(names, False))
    steps += [_pair("set_nomaster", p, "set_master", master=names.bridge) for p in others]
    steps += _take_off(names.bridge, facts.bridge)
    if facts.bridge.link.up:
        steps.append(_pair("set_down", names.bridge, "set_up"))
    steps.append(_pair("set_nomaster", names.nic, "set_master", master=names.bridge))
    gone = names.bridge
    if names.renames:
        gone = f"tmp{names.netdev}"[:15]
        if facts.nic.link.up:
            steps.append(_pair("set_down", names.nic, "set_up"))
        steps.append(Step("rename", names.bridge, {"name": gone}, Step("rename", gone, {"name": names.bridge})))
        steps.append(Step("rename", names.nic, {"name": names.netdev}, Step("rename", names.netdev, {"name": names.nic})))
    steps.append(_pair("set_up", names.netdev, "set_down"))
    steps += _put_on(names.netdev, facts.bridge, names.bridge)
    if facts.tx_offload_off:
        steps.append(Step("set_tx_offload", names.netdev, {"on": True}, Step("set_tx_offload", names.netdev, {"on": False})))
    # deleting is the one step that cannot be undone exactly (a new bridge gets a new ifindex): last
    link = facts.bridge.link
    steps.append(Step("delete_link", gone, {}, Step("create_bridge", gone, {"mac": link.address, "mtu": link.mtu})))
    if facts.delete_vlan:
        steps.append(Step("delete_link", names.netdev))
    return steps


def plan_json(steps: list[Step]) -> list[dict[str, Any]]:
    return [s.to_json() for s in steps]


def plan_text(steps: list[Step]) -> str:
    return "\n".join(f"{i:2d}. {s.describe()}" for i, s in enumerate(steps, 1))
