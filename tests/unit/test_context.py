"""xenscripts.xen.context: env < argv < xenstore, tap paths, required variables."""

from __future__ import annotations

import pytest

from xenscripts.core.args import merge_inputs, parse_args
from xenscripts.core.errors import InputError
from xenscripts.xen.context import (
    VIF_VARIABLES,
    backend_ids,
    build_vif_context,
    checked_backend_path,
    read_xs,
)

BE = "backend/vif/1/0"          # what libxl passes (relative)
ABS_BE = "/local/domain/0/backend/vif/1/0"


class FakeXs:
    """A xenstore reader backed by a dict: absent key -> None, existing key -> its value."""

    def __init__(self, nodes: dict[str, str] | None = None) -> None:
        self.nodes = dict(nodes or {})
        self.reads: list[str] = []

    def read(self, path: str) -> str | None:
        self.reads.append(path)
        return self.nodes.get(path)


def make(argv: list[str], env: dict[str, str], nodes: dict[str, str] | None = None,
         type_if: str | None = None):
    args = parse_args(argv)
    variables = merge_inputs(env, args.assignments, VIF_VARIABLES)
    xs = FakeXs(nodes)
    ctx = build_vif_context("/etc/xen/scripts/vif-bridge", args, variables,
                            type_if or variables.get("type_if") or "vif", xs)
    return ctx, xs


def vif_env(**extra: str) -> dict[str, str]:
    return {"XENBUS_PATH": BE, "vif": "vif1.0", **extra}


def bridge_of(ctx, xs) -> str | None:
    """The bridge the way vif-bridge chooses it: xenstore key, else the merged variable."""
    return read_xs(xs, ctx.key("bridge"), ctx.variables.get("bridge", ""))


# -- precedence ------------------------------------------------------------

@pytest.mark.parametrize(("env_bridge", "arg_bridge", "xs_bridge", "expected"), [
    (None, None, None, ""),
    ("envbr", None, None, "envbr"),
    ("envbr", "argbr", None, "argbr"),
    (None, "argbr", None, "argbr"),
    ("envbr", "argbr", "xsbr", "xsbr"),
    ("envbr", None, "xsbr", "xsbr"),
    (None, "argbr", "xsbr", "xsbr"),
    ("envbr", "argbr", "", ""),          # an existing but empty node wins
    ("envbr", "", None, ""),             # an empty argv value beats the environment
])
def test_bridge_precedence(env_bridge, arg_bridge, xs_bridge, expected):
    env = vif_env()
    if env_bridge is not None:
        env["bridge"] = env_bridge
    argv = ["online", "type_if=vif"] + ([f"bridge={arg_bridge}"] if arg_bridge is not None else [])
    nodes = {f"{BE}/bridge": xs_bridge} if xs_bridge is not None else {}
    ctx, xs = make(argv, env, nodes)
    assert bridge_of(ctx, xs) == expected


@pytest.mark.parametrize(("env_ip", "arg_ip", "xs_ip", "expected"), [
    (None, None, None, []),
    ("10.0.0.1", None, None, ["10.0.0.1"]),
    ("10.0.0.1", "10.0.0.2", None, ["10.0.0.2"]),
    ("10.0.0.1", "10.0.0.2", "10.0.0.3 10.0.0.4", ["10.0.0.3", "10.0.0.4"]),
    (None, None, "10.0.0.3", ["10.0.0.3"]),
    ("10.0.0.1", "10.0.0.2", "", []),   # existing empty node wins
])
def test_ip_precedence(env_ip, arg_ip, xs_ip, expected):
    env = vif_env()
    if env_ip is not None:
        env["ip"] = env_ip
    argv = ["online"] + ([f"ip={arg_ip}"] if arg_ip is not None else [])
    nodes = {f"{BE}/ip": xs_ip} if xs_ip is not None else {}
    ctx, _ = make(argv, env, nodes)
    assert ctx.ip == expected


def test_argv_vif_overrides_environment():
    ctx, _ = make(["online", "vif=vif7.2"], vif_env())
    assert ctx.vif == ctx.dev == "vif7.2"


# -- vif runs --------------------------------------------------------------

@pytest.mark.parametrize(("xenbus_path", "domid", "devid", "frontend"), [
    ("backend/vif/1/0", 1, 0, "/local/domain/1/device/vif/0"),
    ("/local/domain/0/backend/vif/12/3", 12, 3, "/local/domain/12/device/vif/3"),
    ("/local/domain/5/backend/vif/40/1", 40, 1, "/local/domain/40/device/vif/1"),  # driver domain
])
def test_vif_paths(xenbus_path, domid, devid, frontend):
    ctx, _ = make(["online"], {"XENBUS_PATH": xenbus_path, "vif": f"vif{domid}.{devid}"})
    assert ctx.backend == xenbus_path
    assert (ctx.domid, ctx.devid) == (domid, devid)
    assert ctx.frontend == frontend
    assert ctx.key("mtu") == f"{xenbus_path}/mtu"
    assert ctx.vifname is None and ctx.dev == ctx.vif


def test_vifname_renames_dev_but_frontend_comes_from_backend_path():
    ctx, _ = make(["online"], vif_env(), {f"{BE}/vifname": "web1"})
    assert ctx.vif == "vif1.0"
    assert ctx.dev == ctx.vifname == "web1"
    assert ctx.frontend == "/local/domain/1/device/vif/0"


def test_empty_vifname_means_no_rename():
    ctx, _ = make(["online"], vif_env(), {f"{BE}/vifname": ""})
    assert ctx.vifname is None and ctx.dev == "vif1.0"


def test_non_backend_path_has_no_frontend():
    ctx, _ = make(["online"], {"XENBUS_PATH": "/local/domain/0/something/else", "vif": "vif1.0"})
    assert ctx.frontend is None and ctx.domid is None


@pytest.mark.parametrize(("env", "message"), [
    ({"vif": "vif1.0"}, "XENBUS_PATH is not set"),
    ({"vif": "vif1.0", "XENBUS_PATH": ""}, "XENBUS_PATH is not set"),
    ({"XENBUS_PATH": BE}, "vif is not set"),
    ({"XENBUS_PATH": BE, "vif": ""}, "vif is not set"),
])
def test_vif_requires_xenbus_path_and_vif(env, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        make(["online"], env)


@pytest.mark.parametrize("path", [
    "backend/vif/1/../0",
    "../backend/vif/1/0",
    "backend//vif/1/0",
    "backend/vif/1/0/",
    "backend/vif/1/0 x",
    "backend/vif/$(id)/0",
    "backend/vif/1/0;rm",
    "backend/vif/1/0\nx",
    "",
    "/",
])
def test_bad_xenbus_path_is_rejected(path):
    with pytest.raises(InputError) as exc:
        checked_backend_path(path)
    assert repr(path) in str(exc.value)


def test_xenbus_path_with_trailing_newline_is_rejected():
    with pytest.raises(InputError):
        checked_backend_path("backend/vif/1/0\n")


@pytest.mark.parametrize("path", ["backend/vif/1/0", ABS_BE, "/local/domain/0/backend/vif/1/0",
                                  "backend/vif-x_y@z/1.0"])
def test_good_xenbus_path_is_accepted(path):
    assert checked_backend_path(path) == path


def test_bad_xenbus_path_from_env_is_rejected_by_build():
    with pytest.raises(InputError, match="Invalid XENBUS_PATH"):
        make(["online"], {"XENBUS_PATH": "backend/vif/1/../../0", "vif": "vif1.0"})


@pytest.mark.parametrize(("path", "ids"), [
    ("backend/vif/3/1", (3, 1)),
    ("/local/domain/0/backend/vif/3/1", (3, 1)),
    ("xbackend/vif/3/1", None),
    ("backend/vif/3/1/x", None),
    ("backend/vbd/3/1", None),
    ("backend/vif/a/1", None),
])
def test_backend_ids(path, ids):
    assert backend_ids(path) == ids


@pytest.mark.parametrize(("nodes", "message"), [
    ({f"{BE}/vifname": "a/b"}, "Invalid vifname 'a/b'"),
    ({f"{BE}/vifname": "x" * 16}, "Invalid vifname"),
    ({f"{BE}/ip": "10.0.0.1 nope"}, "Invalid IP address 'nope'"),
    ({f"{BE}/mac": "01:00:5e:00:00:01"}, "multicast"),
    ({f"{BE}/mac": "00:16:3e:00:00"}, "'00:16:3e:00:00'"),
])
def test_bad_backend_values_are_rejected(nodes, message):
    with pytest.raises(InputError, match=message):
        make(["online"], vif_env(), nodes)


def test_guest_mac_is_read_and_normalised():
    ctx, _ = make(["online"], vif_env(), {f"{BE}/mac": "00:16:3E:00:01:00"})
    assert ctx.mac == "00:16:3e:00:01:00"


# -- tap runs ----------------------------------------------------------------

def test_tap_backend_path_from_interface():
    # env XENBUS_PATH is ignored for taps: the backend comes from INTERFACE (domain 0 hard-coded)
    ctx, xs = make(["add", "type_if=tap"], {"INTERFACE": "vif3.1-emu", "XENBUS_PATH": "backend/vif/9/9",
                                            "vif": "vif3.1"},
                   {"/local/domain/0/backend/vif/3/1/vifname": "web3"})
    assert ctx.backend == "/local/domain/0/backend/vif/3/1"
    assert (ctx.domid, ctx.devid) == (3, 1)
    assert ctx.vif == "vif3.1-emu"
    assert ctx.vifname == ctx.dev == "web3-emu"
    assert ctx.frontend == "/local/domain/3/device/vif/1"
    assert not any(p.startswith("backend/vif/9/9") for p in xs.reads)


def test_tap_without_vifname():
    ctx, _ = make(["remove", "type_if=tap"], {"INTERFACE": "vif12.0-emu"})
    assert ctx.dev == ctx.vif == "vif12.0-emu"
    assert ctx.backend == "/local/domain/0/backend/vif/12/0"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "INTERFACE is not set"),
    ({"INTERFACE": ""}, "INTERFACE is not set"),
    ({"INTERFACE": "vif3.1"}, "Invalid INTERFACE 'vif3.1'"),
    ({"INTERFACE": "tap3.1-emu"}, "Invalid INTERFACE 'tap3.1-emu'"),
    ({"INTERFACE": "vif3-emu"}, "Invalid INTERFACE 'vif3-emu'"),
    ({"INTERFACE": "vif3.1-emu/x"}, "Invalid INTERFACE"),
])
def test_tap_requires_a_valid_interface(env, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        make(["add", "type_if=tap"], env)


def test_tap_vifname_too_long_with_emu_suffix():
    # "abcdefghijkl" is 12 bytes, fine as a vif name, 16 with "-emu": refused, naming the result
    with pytest.raises(InputError, match="abcdefghijkl-emu"):
        make(["add", "type_if=tap"], {"INTERFACE": "vif3.1-emu"},
             {"/local/domain/0/backend/vif/3/1/vifname": "abcdefghijkl"})
