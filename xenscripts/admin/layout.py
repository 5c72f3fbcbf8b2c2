"""Where an installation puts each file, and what each file holds (pure, standard library only).

``plan_files(paths, source)`` is the whole installation as data: the
install and uninstall verbs (``install.py``) only write or remove what it
lists, so re-running either is safe and a ``--destdir`` tree is exactly it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..commands import COMMANDS
from ..entry.entryfile import MARKER
from ..xen.hooks import DEFAULT_SCRIPT_DIR
from . import launcher

# The names libxl, xend, udev and old recipes call; ``network`` is Xen 2's network-bridge.
SCRIPT_NAMES = tuple(COMMANDS)
ALIASES = {"network": "network-bridge"}
SAVED_SUFFIX = ".upstream"          # upstream's file, kept aside by install
DPKG_SUFFIXES = (".dpkg-new", ".dpkg-dist")  # a newer upstream file left by a package upgrade
UDEV_RULES = "80-xenscripts-network.rules"
INIT_SCRIPT = "xenscripts-hotplugd"
# What is copied to <prefix>/src: enough to rebuild the venv and rerun install.
SOURCE_TREES = ("xenscripts", "bin", "systemd", "udev", "init.d", "man", "docs", "logrotate", "etc")
SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "install.sh")
MAN_SECTION = "8"
# Every key of /etc/xen/xenscripts.conf at its default, generated from conf.KEYS (admin/confdoc.py).
CONF_EXAMPLE = "etc/xenscripts.conf.example"


@dataclass(frozen=True)
class Paths:
    """An installation's locations; *destdir* (packagers, tests) is prepended to every one."""

    prefix: str = "/opt/xenscripts"
    script_dir: str = DEFAULT_SCRIPT_DIR
    datadir: str = "/usr/local/share"
    sbindir: str = "/usr/local/sbin"
    unit_dir: str = "/etc/systemd/system"
    udev_dir: str = "/etc/udev/rules.d"
    init_dir: str = "/etc/init.d"
    logrotate_dir: str = "/etc/logrotate.d"
    conf_dir: str = "/etc/xen"
    destdir: str = ""
    venv_dir: str = ""  # set: an existing venv (a wheel's, the package's) instead of <prefix>/venv
    src_dir: str = ""   # set: where the package is imported from instead of <prefix>/src

    @property
    def venv(self) -> str:
        return self.venv_dir or os.path.join(self.prefix, "venv")

    @property
    def src(self) -> str:
        return self.src_dir or os.path.join(self.prefix, "src")

    @property
    def launcher(self) -> str:
        """The compiled interpreter of the entry files (``xenscripts-launch``), when it could be built:
        beside the venv it goes with (``<prefix>/libexec``, or a wheel's venv's)."""
        return os.path.join(self.venv_dir or self.prefix, "libexec", launcher.NAME)

    @property
    def docdir(self) -> str:
        return os.path.join(self.datadir, "doc", "xenscripts")

    @property
    def mandir(self) -> str:
        return os.path.join(self.datadir, "man", f"man{MAN_SECTION}")

    def staged(self, path: str) -> str:
        """*path* under destdir (itself when there is none)."""
        return os.path.join(self.destdir, path.lstrip("/")) if self.destdir else path

    def script(self, name: str) -> str:
        return os.path.join(self.script_dir, name)


@dataclass(frozen=True)
class FileItem:
    """One installed file: target path (without destdir), content, mode, and what it is."""

    path: str
    content: bytes
    mode: int
    kind: str  # "launcher", "entry", "admin", "unit", "init", "udev", "logrotate", "example", "doc", "man"


def substitute(text: str, paths: Paths) -> str:
    """Fill a template's ``@VENV@``, ``@SRC@``, ``@PREFIX@``, ``@SCRIPT_DIR@``, ``@DOCDIR@`` placeholders."""
    for key, value in (("@VENV@", paths.venv), ("@SRC@", paths.src), ("@PREFIX@", paths.prefix),
                       ("@SCRIPT_DIR@", paths.script_dir), ("@DOCDIR@", paths.docdir)):
        text = text.replace(key, value)
    return text


def entry_file(name: str, paths: Paths, source: Path) -> bytes:
    """The entry file installed as *name* in the script directory: ``bin/<name>`` with its paths filled in.

    Each entry file names its command (``network`` is network-bridge's file);
    ``@SRC@`` becomes ``<prefix>/src`` and ``@VENV@`` ``<prefix>/venv``.
    """
    template = source / "bin" / ALIASES.get(name, name)
    text = substitute(template.read_text(), paths)
    if MARKER not in text:
        raise ValueError(f"{template} does not say it is a {MARKER}")
    return text.encode()


def admin_file(paths: Paths) -> bytes:
    """``<sbindir>/xenscripts``: runs the admin command from the source copy with the standard library.

    Install and uninstall then work even when a Python upgrade broke the venv;
    the other subcommands find pyroute2 in the venv's site-packages.
    """
    return f'''#!/usr/bin/python3 -IB
"""xenscripts entry point for the admin command (install, uninstall, status, check, show)."""
import os
import sys

sys.path.insert(0, {paths.src!r})
site = os.path.join({paths.venv!r}, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
if os.path.isdir(site):
    sys.path.append(site)
from xenscripts.admin.main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''.encode()


def _tree(source: Path, top: str) -> list[Path]:
    root = source / top
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))


def source_files(source: Path) -> list[Path]:
    """The files of *source* copied to ``<prefix>/src`` (relative paths)."""
    files = [source / f for f in SOURCE_FILES if (source / f).is_file()]
    for top in SOURCE_TREES:
        files += _tree(source, top)
    return [p.relative_to(source) for p in files]


def unit_files(source: Path) -> list[str]:
    """The systemd units in ``systemd/`` (hotplugd's socket and service, network-bridge's service…)."""
    return sorted(p.name for p in (source / "systemd").glob("*") if p.suffix in (".service", ".socket"))


def _mode(path: Path) -> int:
    return 0o755 if os.access(path, os.X_OK) else 0o644


def plan_files(paths: Paths, source: Path, launch: bytes | None = None) -> list[FileItem]:
    """Every file an installation writes, outside the venv, in install order.

    With *launch* (the compiled ``xenscripts-launch``), it goes first and every
    entry file names it on its ``#!`` line; without, they start Python."""
    items = [FileItem(paths.launcher, launch, 0o755, "launcher")] if launch is not None else []
    for name in SCRIPT_NAMES:
        content = entry_file(name, paths, source)
        if launch is not None:
            content = launcher.with_launcher(content, paths.launcher)
        items.append(FileItem(paths.script(name), content, 0o755, "entry"))
    items.append(FileItem(os.path.join(paths.sbindir, "xenscripts"), admin_file(paths), 0o755, "admin"))
    for rel in source_files(source):
        items.append(FileItem(os.path.join(paths.src, str(rel)), (source / rel).read_bytes(),
                              _mode(source / rel), "source"))
    for unit in unit_files(source):
        text = substitute((source / "systemd" / unit).read_text(), paths)
        items.append(FileItem(os.path.join(paths.unit_dir, unit), text.encode(), 0o644, "unit"))
    init = source / "init.d" / INIT_SCRIPT
    if init.is_file():
        items.append(FileItem(os.path.join(paths.init_dir, INIT_SCRIPT),
                              substitute(init.read_text(), paths).encode(), 0o755, "init"))
    rules = source / "udev" / UDEV_RULES
    if rules.is_file():
        items.append(FileItem(os.path.join(paths.udev_dir, UDEV_RULES),
                              substitute(rules.read_text(), paths).encode(), 0o644, "udev"))
    for snippet in _tree(source, "logrotate"):
        items.append(FileItem(os.path.join(paths.logrotate_dir, snippet.name), snippet.read_bytes(),
                              0o644, "logrotate"))
    example = source / CONF_EXAMPLE
    if example.is_file():
        items.append(FileItem(os.path.join(paths.conf_dir, example.name), example.read_bytes(), 0o644, "example"))
    for doc in [source / "README.md", source / "LICENSE", *_tree(source, "docs")]:
        if doc.is_file():
            items.append(FileItem(os.path.join(paths.docdir, doc.name), doc.read_bytes(), 0o644, "doc"))
    for page in _tree(source, "man"):
        items.append(FileItem(os.path.join(paths.mandir, page.name), page.read_bytes(), 0o644, "man"))
    return items
