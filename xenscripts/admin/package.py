"""The Debian package's files: ``layout.plan_files`` placed where Debian wants them (standard library only).

``debian/rules`` runs ``python3 -m xenscripts.admin.package DESTDIR PYVER``
after dh-virtualenv built the venv in ``/usr/lib/xenscripts``. Entry files
live in ``/usr/lib/xenscripts/scripts`` and the script directory gets
symlinks to them (diverted names: see ``debian/xenscripts.preinst``);
units, udev rules and man pages go to the package locations, and dpkg, not
``xenscripts install``, owns every file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import launcher
from .layout import SCRIPT_NAMES, FileItem, Paths, plan_files

PREFIX = "/usr/lib/xenscripts"
ENTRY_DIR = f"{PREFIX}/scripts"
# dpkg's list of our files: an admin command finding it leaves install/uninstall to apt.
DPKG_LIST = "/var/lib/dpkg/info/xenscripts.list"


def deb_paths(python_version: str) -> Paths:
    """Where the package puts things; the venv is dh-virtualenv's, at the prefix itself."""
    return Paths(prefix=PREFIX, venv_dir=PREFIX,
                 src_dir=f"{PREFIX}/lib/python{python_version}/site-packages",
                 datadir="/usr/share", sbindir="/usr/sbin", unit_dir="/lib/systemd/system",
                 udev_dir="/lib/udev/rules.d")


def package_items(paths: Paths, source: Path, launch: bytes | None = None) -> list[FileItem]:
    """The installation plan without the source copy and the LICENSE (``debian/copyright`` has it)."""
    return [item for item in plan_files(paths, source, launch)
            if item.kind != "source" and not (item.kind == "doc" and item.path.endswith("/LICENSE"))]


def stage(destdir: str, paths: Paths, source: Path, launch: bytes | None = None) -> list[str]:
    """Write the package's files under *destdir*; the names written (symlinks included)."""
    written = []
    for item in package_items(paths, source, launch):
        target = item.path
        if item.kind == "entry":
            target = os.path.join(ENTRY_DIR, os.path.basename(item.path))
            link = destdir + item.path
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(target, link)
            written.append(item.path)
        full = destdir + target
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(item.content)
        os.chmod(full, item.mode)
        written.append(target)
    return written


def diverted_names() -> str:
    """The script names the package diverts, for the maintainer scripts (``#SCRIPTS#``)."""
    return " ".join(SCRIPT_NAMES)


def installed_by_package() -> bool:
    """True when the Debian package owns this host's installation."""
    return os.path.exists(DPKG_LIST)


def main(argv: list[str]) -> int:
    """``python3 -m xenscripts.admin.package DESTDIR PYVER`` or ``… --names``."""
    if argv[1:] == ["--names"]:
        print(diverted_names())
        return 0
    destdir, version = argv[1], argv[2]
    root = Path(__file__).resolve().parents[2]
    launch, said = launcher.built()
    if launch is None:  # the build machine has gcc (Build-Depends): a package without it would be slower
        print(said, file=sys.stderr)
        return 1
    for name in stage(os.path.abspath(destdir), deb_paths(version), root, launch):
        print(f"staged {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
