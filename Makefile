# xenscripts: `make demo` and `make check` work on a fresh Debian host as root.
PYTHON ?= /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
APT_PACKAGES := iproute2 iptables nftables ebtables arptables xenstore-utils \
	xen-utils-common iputils-ping iputils-arping procps python3 python3-venv \
	dnsmasq-base isc-dhcp-server isc-dhcp-client udhcpc graphviz python3-nftables \
	ethtool conntrack logrotate net-tools
PYTEST_ARGS ?=

.PHONY: all deps check demo bench lint install clean conf-docs

all: check

# Debian packages: installed only when one is missing, so a warm run is quick.
.deps-apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p /var/log/xen
	@touch $@

$(VENV)/.installed: setup.cfg pyproject.toml .deps-apt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

deps: .deps-apt $(VENV)/.installed

lint: deps
	$(VENV)/bin/ruff check xenscripts tests bench demo

# The whole suite in-process, then the host tests again through a warm hotplugd.
check: deps lint
	$(VPY) -m pytest -q $(PYTEST_ARGS)
	XENSCRIPTS_TEST_MODE=daemon $(VPY) -m pytest -q tests/host $(PYTEST_ARGS)

demo: deps
	$(VPY) demo/demo.py

# Side by side with Debian's scripts: one vif (cold and warm), then 64 at once.
bench: deps
	$(VPY) bench/bench_vif_bridge.py --daemon
	$(VPY) bench/bench_concurrent.py
	$(VPY) bench/bench_firewall.py --reps 5
	$(VPY) bench/bench_spaced.py

install: deps
	./install.sh

# The config example, the man pages' FILES and docs/admin.md's key table, from xenscripts/conf.py.
conf-docs:
	$(PYTHON) -m xenscripts.admin.confdoc

clean:
	rm -rf $(VENV) .deps-apt .pytest_cache build *.egg-info
