"""``xenscripts``: the admin command (install, uninstall, status, check, show).

Not a hotplug entry point: it always runs in-process, never through hotplugd.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

USAGE = """\
usage: xenscripts install|uninstall [--prefix P] [--script-dir D] [--datadir S] [--destdir R] [--dry-run]
       xenscripts install ... [--wheelhouse DIR] [--no-preflight]
       xenscripts status [--json] [--vif VIF]
       xenscripts check [--json] [--fix]
       xenscripts show [--format svg|png|dot|text] [-o FILE]
       xenscripts --help|--version

install first checks the prerequisites (venv module, compiler and headers or --wheelhouse, a
package index, a valid config file; python3-nftables, dnsmasq and xenfs as notes) and changes
nothing when one is missing; it then puts our entry points in place of the Xen network hotplug
scripts (upstream's are kept as <name>.upstream), the hotplugd units, init script, udev rules,
docs and man pages; uninstall puts upstream's back (where the Debian package is installed, both
are apt's). status lists the host's Xen networks and guest NICs; check compares them
with what xenstore and the configuration ask for (exit 1 on any drift; --fix repairs); show
draws them."""


class UsageError(Exception):
    """Bad arguments: the message and the usage go to stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


WHEEL_DATA = Path(sys.prefix) / "share" / "xenscripts"  # a wheel's data_files (setup.cfg)


def _is_tree(root: Path) -> bool:
    return (root / "bin" / "vif-bridge").exists() and (root / "systemd").is_dir()


def source_root() -> Path:
    """The tree we install from: the one this package was imported from (a checkout or ``<prefix>/src``),
    else the data files a wheel put in ``<venv>/share/xenscripts``."""
    root = Path(__file__).resolve().parents[2]
    if _is_tree(root):
        return root
    if _is_tree(WHEEL_DATA):
        return WHEEL_DATA
    raise UsageError(f"{root} is not a xenscripts source tree and {WHEEL_DATA} holds no installed data: run "
                     "install from a checkout (./install.sh), from <prefix>/src, or from a venv the wheel went into")


def installed_prefix(root: Path) -> str | None:
    """``<prefix>`` when *root* is the source copy an install made (``<prefix>/src`` beside its ``venv``).

    The admin command installed in /usr/local/sbin runs from there: its install
    and uninstall then default to that prefix, not /opt/xenscripts.
    """
    from .venv import OURS

    if root.name == "src" and (root.parent / "venv" / OURS).is_file():
        return str(root.parent)
    return None


def refuse_over_the_package(verb: str) -> None:
    """The Debian package owns this host's scripts: dpkg's diversions must not be undone behind its back."""
    from .package import installed_by_package

    if installed_by_package():
        raise OSError(f"the Debian package xenscripts is installed (dpkg -L xenscripts): {verb} is apt's here: "
                      "'apt install ./xenscripts_<version>_<arch>.deb' to upgrade, 'apt remove xenscripts' "
                      "to put upstream's scripts back (nothing was changed)")


def _parser() -> _Parser:
    parser = _Parser(prog="xenscripts", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__
    from .layout import Paths

    parser.add_argument("--version", action="version", version=f"xenscripts {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for verb in ("install", "uninstall"):
        p = sub.add_parser(verb)
        p.add_argument("--prefix", default=installed_prefix(Path(__file__).resolve().parents[2]) or Paths.prefix,
                       help="venv and source copy (default %(default)s)")
        p.add_argument("--script-dir", default=Paths.script_dir, help="default %(default)s")
        p.add_argument("--datadir", default=Paths.datadir, help="docs and man pages (default %(default)s)")
        p.add_argument("--destdir", default="", help="stage every file under this root (packagers)")
        p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
        p.add_argument("--skip-venv", action="store_true", help="leave <prefix>/venv as it is")
        p.add_argument("--python", default="/usr/bin/python3", help="the Python the venv is made with")
        if verb == "install":
            p.add_argument("--wheelhouse", default=None,
                           help="install the venv's packages from wheels in this directory (offline hosts)")
            p.add_argument("--no-preflight", action="store_true", help="skip the prerequisite checks")
    p = sub.add_parser("status")
    p.add_argument("--json", action="store_true")
    p.add_argument("--vif", default=None, help="only this guest NIC, with every firewall rule naming it")
    p = sub.add_parser("check")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fix", action="store_true")
    p = sub.add_parser("show")
    p.add_argument("--format", choices=("svg", "png", "dot", "text"), default=None,
                   help="default: from -o's suffix, else svg when Graphviz is installed, else text")
    p.add_argument("-o", "--output", default=None)
    return parser


def _install(opts: argparse.Namespace, stdout: TextIO) -> int:
    from .install import Actions, install, uninstall
    from .layout import Paths

    destdir = os.path.abspath(opts.destdir) if opts.destdir else ""
    if not destdir:
        refuse_over_the_package(opts.verb)
    source = source_root()
    wheel = source == WHEEL_DATA  # the venv pip installed the wheel into serves; no source copy, no venv build
    paths = Paths(prefix=opts.prefix, script_dir=opts.script_dir, datadir=opts.datadir, destdir=destdir,
                  venv_dir=sys.prefix if wheel else "", src_dir=str(Path(__file__).resolve().parents[2]) if wheel else "")
    act = Actions(lambda line: print(line, file=stdout), opts.dry_run)
    if opts.verb == "install":
        return install(paths, source, act, python=opts.python, skip_venv=opts.skip_venv or wheel,
                       wheelhouse=opts.wheelhouse and os.path.abspath(opts.wheelhouse),
                       preflight=not opts.no_preflight, copy_source=not wheel)
    return uninstall(paths, source, act)


def run(argv: list[str], env: Mapping[str, str], stderr: TextIO | None = sys.stderr,
        stdout: TextIO | None = None) -> int:
    """``xenscripts VERB …`` (argv[0] is the program name)."""
    stderr = stderr or sys.stderr
    stdout = stdout or sys.stdout
    try:
        opts = _parser().parse_args(argv[1:])
        if opts.verb in ("install", "uninstall"):
            if os.geteuid() != 0 and not opts.destdir and not opts.dry_run:
                raise UsageError(f"{opts.verb} needs root (or --destdir, or --dry-run)")
            return _install(opts, stdout)
        from . import report

        return report.run_verb(opts, env, stdout, stderr)
    except UsageError as e:
        stderr.write(f"xenscripts: {e}\n{USAGE}\n")
        return 2
    except OSError as e:
        stderr.write(f"xenscripts: {e}\n")
        return 1


def main(argv: list[str] | None = None) -> int:
    """Console script ``xenscripts``."""
    args = sys.argv[1:] if argv is None else argv
    return run(["xenscripts", *args], dict(os.environ), sys.stderr, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
