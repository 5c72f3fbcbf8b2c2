"""ISC dhcpd: placeholder until the ISC path lands."""

from __future__ import annotations
