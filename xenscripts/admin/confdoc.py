"""The config file's documentation, generated from the reader's key table (``conf.KEYS``).

Three outputs, one source, so they cannot drift: ``etc/xenscripts.conf.example``
(installed as ``/etc/xen/xenscripts.conf.example``), the ``/etc/xen/xenscripts.conf``
entry of each man page's FILES section, and the key list in ``docs/admin.md``.
``python3 -m xenscripts.admin.confdoc [--check] [ROOT]`` rewrites them (``make conf-docs``);
with ``--check`` it only names the files that differ (exit 1). Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.conf import DEFAULT_PATH, ENTRY_POINTS, KEYS, Key

EXAMPLE = "etc/xenscripts.conf.example"
ADMIN_MD = "docs/admin.md"
MD_BEGIN = "<!-- BEGIN generated from xenscripts/core/conf.py by 'make conf-docs': do not edit -->"
MD_END = "<!-- END generated -->"
ROFF_BEGIN = '.\\" BEGIN generated from xenscripts/core/conf.py by make conf-docs: do not edit'
ROFF_END = '.\\" END generated'
# man page -> the command whose keys it lists
MAN_PAGES = {f"man/{name}.8": name for name in (*ENTRY_POINTS, "xenscripts", "xenscripts-hotplugd")}
SYNTAX = ("key=value, one per line; a '#' at the start of a line, or after a blank, starts a comment; "
          "a value in '...' or \"...\" keeps a ' #' in it; a '#' inside a word (/srv/a#b) is part of it")


def _is_description(key: Key) -> bool:
    return key.default.startswith("<")


def _default_words(key: Key) -> str:
    return key.default[1:-1] if _is_description(key) else key.default


def example_text() -> str:
    """``/etc/xen/xenscripts.conf.example``: every key, commented out, with its default value."""
    lines = [f"# {DEFAULT_PATH}.example: every key {DEFAULT_PATH} may hold, each at its default.",
             "# Generated from the reader's key table (xenscripts/core/conf.py): do not edit; copy the lines",
             f"# you need into {DEFAULT_PATH} and remove their leading '#'.",
             f"# Syntax: {SYNTAX}.",
             "# A bad line makes every script fail, naming the file and line: run 'xenscripts check' after editing.",
             "# Precedence, lowest first: this file < the environment < key=value arguments < xenstore keys.", ""]
    for key in KEYS.values():
        lines.append(f"# {key.doc}")
        lines.append(f"# values: {key.values}; read by: {', '.join(key.readers)}")
        if _is_description(key):
            lines.append(f"# default: {_default_words(key)}; for example:")
        lines.append(f"#{key.name}={key.example}")
        lines.append("")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def admin_md_block() -> str:
    """The key table of ``docs/admin.md``."""
    rows = ["| key | default | values | read by | what it sets |", "|---|---|---|---|---|"]
    for key in KEYS.values():
        default = _default_words(key) if _is_description(key) else f"`{key.default}`"
        rows.append(f"| `{key.name}` | {_md_cell(default)} | {_md_cell(key.values)} | "
                    f"{', '.join(key.readers)} | {_md_cell(key.doc)} |")
    return "\n".join([MD_BEGIN, *rows, MD_END])


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def man_block(command: str) -> str:
    """The ``/etc/xen/xenscripts.conf`` entries of *command*'s FILES section."""
    keys = [key for key in KEYS.values() if command in key.readers]
    lines = [ROFF_BEGIN, ".TP", f".I {_roff(DEFAULT_PATH)}"]
    if keys:
        lines.append(_roff(f"host settings; {command} reads these keys (default in brackets):"))
        lines.append(".RS")
        for key in keys:
            lines += [".TP", f".B {_roff(key.name)}",
                      _roff(f"{key.values} [{_default_words(key) or 'none'}]: {key.doc}")]
        lines.append(".RE")
    else:
        lines.append(_roff(f"host settings ({command} reads none of them)"))
    lines += [".TP", f".I {_roff(DEFAULT_PATH)}.example",
              _roff(f"every key with its default, values and readers; syntax: {SYNTAX}"), ROFF_END]
    return "\n".join(lines)


def _replace_block(text: str, begin: str, end: str, block: str, where: str) -> str:
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"{where}: no '{begin}' ... '{end}' block to regenerate")
    return text[:start] + block + text[stop + len(end):]


def generated(root: Path) -> dict[str, str]:
    """Each generated file (relative path) with the content it should have."""
    out = {EXAMPLE: example_text()}
    admin = root / ADMIN_MD
    out[ADMIN_MD] = _replace_block(admin.read_text(), MD_BEGIN, MD_END, admin_md_block(), ADMIN_MD)
    for page, command in MAN_PAGES.items():
        text = (root / page).read_text()
        out[page] = _replace_block(text, ROFF_BEGIN, ROFF_END, man_block(command), page)
    return out


def stale(root: Path) -> list[str]:
    """The generated files whose checked-in copy differs from what the key table gives."""
    return [rel for rel, text in generated(root).items()
            if not (root / rel).is_file() or (root / rel).read_text() != text]


def main(argv: list[str]) -> int:
    """Rewrite the generated files under ROOT (default: this checkout); ``--check``: only name the stale ones."""
    check = "--check" in argv
    words = [a for a in argv if a != "--check"]
    root = Path(words[0]) if words else Path(__file__).resolve().parents[2]
    differ = stale(root)
    if check:
        for rel in differ:
            print(f"{rel} differs from xenscripts/core/conf.py's key table: run 'make conf-docs'", file=sys.stderr)
        return 1 if differ else 0
    for rel, text in generated(root).items():
        if rel in differ:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
