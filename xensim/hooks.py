"""Test hooks: a script dir whose vif-post.d hook marks that it started, then runs a body."""

from __future__ import annotations

from pathlib import Path


def marked_hook(tmp_path: Path, body: str) -> tuple[str, Path]:
    """(script dir, marker): the hook appends to *marker* when it starts, then runs *body*."""
    marker = tmp_path / "hook-started"
    hooks = tmp_path / "scripts" / "vif-post.d"
    hooks.mkdir(parents=True)
    hook = hooks / "50-test.hook"
    hook.write_text(f"echo started >> {marker}\n{body}\n")
    hook.chmod(0o755)
    return str(tmp_path / "scripts"), marker
