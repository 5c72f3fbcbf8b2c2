"""``xenscripts install``'s preflight: every prerequisite checked before anything is touched.

Each missing one is named with the command that fixes it; install refuses to
go on rather than half-install (``--dry-run`` shows the same list and what
would change). Notes are things that work without, said once. Standard library only.
"""

from __future__ import annotations

import configparser
import glob
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_INDEX = "https://pypi.org/simple/"
PIP_CONFS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")
WHEELS = ("pyroute2", "python_iptables")  # what pip fetches; python-iptables compiles a C extension
INDEX_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    what: str    # the prerequisite, in words
    fix: str     # the command (or choice) that fixes it
    fatal: bool  # install refuses to go on

    def line(self) -> str:
        return f"{'MISSING' if self.fatal else 'note'}: {self.what}: {self.fix}"


def _runs(python: str, code: str) -> bool:
    try:
        return subprocess.run([python, "-I", "-c", code], capture_output=True, timeout=20, check=False,
                              stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pip_index(env: Mapping[str, str]) -> str:
    """The index pip would use: ``PIP_INDEX_URL``, else pip.conf's ``index-url``, else PyPI."""
    return pip_sources(env)[0]


def pip_sources(env: Mapping[str, str]) -> list[str]:
    """Every place pip looks: the index first, then extra indexes and find-links (environment, then pip.conf)."""
    parser = configparser.ConfigParser()
    parser.read([os.path.expanduser(p) for p in PIP_CONFS])

    def conf(key: str) -> list[str]:
        return [v for section in ("install", "global") if parser.has_option(section, key)
                for v in parser.get(section, key).split()]

    index = env.get("PIP_INDEX_URL") or next(iter(conf("index-url")), DEFAULT_INDEX)
    extra = env.get("PIP_EXTRA_INDEX_URL", "").split() + conf("extra-index-url")
    links = env.get("PIP_FIND_LINKS", "").split() + conf("find-links")
    return [index, *extra, *links]


def sources_reachable(env: Mapping[str, str]) -> str | None:
    """None when any place pip looks answers, else why none does."""
    whys = [index_reachable(url) for url in pip_sources(env)]
    return None if any(why is None for why in whys) else "; ".join(w for w in whys if w)


def index_reachable(url: str) -> str | None:
    """None when *url* answers (a ``file://`` index or a find-links directory: when it exists), else why not."""
    if url.startswith(("file://", "/")):
        return None if os.path.isdir(url.removeprefix("file://")) else f"{url} does not exist"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/pyroute2/", timeout=INDEX_TIMEOUT):
            return None
    except OSError as e:
        return f"{url} does not answer ({getattr(e, 'reason', e)})"


def wheelhouse_lacks(wheelhouse: str) -> list[str]:
    """The distributions of ``WHEELS`` that *wheelhouse* has no wheel or sdist of."""
    return [name for name in WHEELS
            if not glob.glob(os.path.join(wheelhouse, f"{name}-*")) and
            not glob.glob(os.path.join(wheelhouse, f"{name.replace('_', '-')}-*"))]


def check(python: str, wheelhouse: str | None, env: Mapping[str, str], build_venv: bool) -> list[Finding]:
    """What this host lacks for ``xenscripts install`` (the venv's needs only when *build_venv*)."""
    found: list[Finding] = []
    if build_venv:
        if not _runs(python, "import venv, ensurepip"):
            found.append(Finding(f"{python} cannot make a venv (no venv/ensurepip module)",
                                 "apt-get install python3-venv", True))
        prebuilt = wheelhouse is not None and not wheelhouse_lacks(wheelhouse)
        if not prebuilt:
            if shutil.which("gcc") is None and shutil.which("cc") is None:
                found.append(Finding("a C compiler (python-iptables builds a C extension)",
                                     "apt-get install build-essential, or --wheelhouse DIR with prebuilt wheels, "
                                     "or the Debian package (make deb)", True))
            if not _runs(python, "import os, sysconfig; "
                         "assert os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))"):
                found.append(Finding("the Python headers (Python.h, for python-iptables' C extension)",
                                     "apt-get install python3-dev, or --wheelhouse DIR with prebuilt wheels", True))
        if wheelhouse is not None:
            lacking = wheelhouse_lacks(wheelhouse) if os.path.isdir(wheelhouse) else list(WHEELS)
            if lacking:
                found.append(Finding(f"--wheelhouse {wheelhouse} has no {', '.join(lacking)}",
                                     f"on a host with network: pip wheel -w {wheelhouse} <this tree>", True))
        else:
            why = sources_reachable(env)
            if why is not None:
                found.append(Finding(f"a package index for pip: {why}",
                                     "connect the host, set PIP_INDEX_URL to a mirror, or --wheelhouse DIR "
                                     "(offline hosts), or the Debian package (make deb)", True))
    found += _host_findings(env)
    if not os.path.exists("/proc/xen/capabilities"):
        found.append(Finding("xenfs at /proc/xen (this is not a Xen dom0, or xenfs is not mounted)",
                             "boot the Xen hypervisor; Debian's xen init script (xen-utils-common) mounts xenfs "
                             "('mount -t xenfs xenfs /proc/xen' by hand). hotplugd's service starts only once it "
                             "is there (ConditionPathExists=/proc/xen/capabilities), its socket from boot on; "
                             "both are ordered before xendomains.service", False))
    return found


def _host_findings(env: Mapping[str, str]) -> list[Finding]:
    """The config file (a bad line fails every script) and the optional components it needs."""
    from ..core.conf import ConfigError, config_path, load_config
    from ..firewall.detect import auto_backend
    from .components import components

    try:
        conf = load_config(env)
    except ConfigError as e:
        return [Finding(f"a usable {config_path(env)}: {e}", "fix that line (every key, its values and default: "
                        "/etc/xen/xenscripts.conf.example, or the tree's etc/xenscripts.conf.example)", True)]
    antispoof = conf.get("antispoof") == "yes"
    out = []
    for c in components(env, conf, auto_backend()[0], []):
        if c.present or not c.needed:
            continue
        fatal = c.package == "nftables" and antispoof  # every antispoof=yes vif would then fail
        out.append(Finding(f"{c.package} ({c.what}; needed: {c.needed})",
                           f"apt-get install {c.package}; without it {c.without}", fatal))
    return out


def report(found: list[Finding]) -> list[str]:
    """The preflight's lines for the admin."""
    if not found:
        return ["preflight: every prerequisite is there"]
    return [f"preflight: {f.line()}" for f in found]
