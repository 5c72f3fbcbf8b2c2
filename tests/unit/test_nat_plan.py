"""vif-nat's address plan: upstream's 10.x scheme, the router rule, the hostname."""

from __future__ import annotations

import pytest

from xenscripts.core.errors import InputError
from xenscripts.xen.natplan import NatPlan, default_guest_address, hostname_for, nat_plan, router_address


@pytest.mark.parametrize(("domid", "vifid", "expected"), [
    (1, 1, "10.0.1.1/16"), (255, 2, "10.0.255.2/16"), (256, 1, "10.1.0.1/16"), (65535, 3, "10.255.255.3/16"),
])
def test_default_guest_address(domid, vifid, expected):
    assert default_guest_address(domid, vifid) == expected


@pytest.mark.parametrize(("guest", "router"), [
    ("10.0.1.1", "10.0.1.128"),      # upstream's +127
    ("10.0.1.127", "10.0.1.254"),    # the last octet upstream gets right
    ("10.0.1.128", "10.0.1.1"),      # upstream: .255
    ("192.168.7.200", "192.168.7.73"),  # upstream: .327
    ("10.0.1.254", "10.0.1.127"),
])
def test_router_address(guest, router):
    assert router_address(guest) == router


def test_hostname():
    assert (hostname_for(1, 1), hostname_for(1, 2), hostname_for(12, 11)) == ("dom1", "dom1-2", "dom12-11")


def test_plan_defaults_and_explicit_ip():
    assert nat_plan([], 3, 1) == NatPlan("10.0.3.1", 16, "10.0.3.128", "dom3")
    assert nat_plan(["fd00::5", "192.168.1.5/24"], 3, 2) == NatPlan("192.168.1.5", 24, "192.168.1.132", "dom3-2")
    assert nat_plan(["192.168.1.5"], 3, 1).prefixlen == 16


@pytest.mark.parametrize("ip", [["10.0.1.0"], ["10.0.1.255/16"]])
def test_plan_refuses_unusable_addresses(ip):
    with pytest.raises(InputError):
        nat_plan(ip, 1, 1)


def test_plan_refuses_handle_out_of_range():
    with pytest.raises(InputError):
        nat_plan([], 1, 256)
