# xenscripts: `make demo` and `make check` work on a fresh Debian host as root.
PYTHON ?= /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
# make deb's tools (and lintian to check its output); the nspawn tests boot systemd-container.
DEB_BUILD_PACKAGES := debhelper dh-virtualenv python3-dev python3-venv build-essential lintian
APT_PACKAGES := iproute2 iptables nftables ebtables arptables xenstore-utils \
	xen-utils-common iputils-ping iputils-arping procps python3 python3-venv \
	dnsmasq-base isc-dhcp-server isc-dhcp-client udhcpc graphviz python3-nftables \
	ethtool conntrack logrotate net-tools openvswitch-switch \
	$(DEB_BUILD_PACKAGES) systemd-container
PYTEST_ARGS ?=
DEB_VERSION := $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_FILE := dist/xenscripts_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb

.PHONY: all deps check demo bench lint install clean deb conf-docs

all: check

# Debian packages: installed only when one is missing, so a warm run is quick.
# The tests start their own ovsdb-server + ovs-vswitchd per simulated host; the packaged
# Open vSwitch must never start in this machine's own namespace. While apt installs, a
# policy-rc.d that answers 101 (action forbidden; invoke-rc.d and deb-systemd-invoke both
# ask it) stops every package's postinst from starting its service; ours is removed after,
# a policy-rc.d already there is left alone. When make installed openvswitch-switch, its
# units are disabled too (never on a host that had it before: that host's own switch stays).
OVS_UNITS := openvswitch-switch.service ovs-vswitchd.service ovsdb-server.service
NO_SERVICE_STARTS = if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '\043!/bin/sh\n\043 make deps: no service starts while apt installs\nexit 101\n' \
		> /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && ours=1; fi;
SERVICE_STARTS_BACK = if [ -n "$$ours" ]; then rm -f /usr/sbin/policy-rc.d; fi
.deps-apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		$(NO_SERVICE_STARTS) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; rc=$$?; \
		$(SERVICE_STARTS_BACK); \
		case " $$missing " in *" openvswitch-switch "*) \
			systemctl disable $(OVS_UNITS) >/dev/null 2>&1 || true;; esac; \
		exit $$rc; \
	fi
	@mkdir -p /var/log/xen
	@touch $@

$(VENV)/.installed: setup.cfg pyproject.toml .deps-apt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

deps: .deps-apt $(VENV)/.installed

# ruff; mypy (setup.cfg [mypy]); import-linter: the layers and the std-lib-only thin client (setup.cfg).
lint: deps
	$(VENV)/bin/ruff check xenscripts xensim tests bench demo
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The whole suite in-process (tests/system boots the .deb in a systemd container), then the
# host tests again through a warm hotplugd, each script started by the compiled xenscripts-launch
# as an installation with a C compiler has it (xensim/ours.py builds it in build/launch).
check: deps lint $(DEB_FILE)
	$(VPY) -m pytest -q $(PYTEST_ARGS)
	XENSCRIPTS_TEST_MODE=daemon XENSCRIPTS_TEST_CLIENT=launch $(VPY) -m pytest -q tests/host $(PYTEST_ARGS)

demo: deps
	$(VPY) demo/demo.py

# Side by side with Debian's scripts: one vif (cold and warm), then 64 at once.
bench: deps
	$(VPY) bench/bench_vif_bridge.py --daemon
	$(VPY) bench/bench_concurrent.py
	$(VPY) bench/bench_firewall.py --reps 5
	$(VPY) bench/bench_spaced.py
	$(VPY) bench/bench_ovs.py
	$(VPY) bench/bench_burst.py --sizes 50,200 --reps 1 --configs ovs
	$(VPY) bench/bench_burst.py --sizes 50,200 --reps 2
	$(VPY) bench/soak.py --cycles 800

install: deps
	./install.sh

# dist/xenscripts_<version>_<arch>.deb, built with debhelper and dh-virtualenv from a
# copy of the tree's files (git's list: no .venv, no build products), then lintian.
deb: $(DEB_FILE)

# Rebuilt only when a tracked file changed: make check installs it in a throwaway systemd container.
$(DEB_FILE): .deps-apt $(wildcard $(shell git ls-files 2>/dev/null))
	rm -rf build/deb && mkdir -p build/deb/src dist
	git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C build/deb/src
	cd build/deb/src && dpkg-checkbuilddeps && DEB_OUTDIR=$(CURDIR)/dist debian/rules clean binary
	@# a lintian error fails the build (and the .deb goes, so the next make runs lintian again);
	@# warnings are printed: each one is either fixed or overridden with its reason in debian/
	lintian --fail-on error --tag-display-limit 0 $(DEB_FILE) || { rm -f $(DEB_FILE); exit 1; }
	@echo "built $(DEB_FILE)"

# The config example, the man pages' FILES and docs/admin.md's key table, from xenscripts/core/conf.py.
conf-docs:
	$(PYTHON) -m xenscripts.admin.confdoc

clean:
	rm -rf $(VENV) .deps-apt .pytest_cache build dist *.egg-info
