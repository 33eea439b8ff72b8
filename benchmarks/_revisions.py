"""An earlier revision of this repository checked out beside it, to be run in the same benchmark as today's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / "cache"


def worktree(rev: str) -> Path:
    """A detached git worktree of ``rev`` under ``benchmarks/cache/`` (made once, then reused)."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
    tree = CACHE / f"worktree-{sha[:12]}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO, check=True, capture_output=True)
    return tree


def cli(root: Path) -> list[str]:
    """The command that runs the checkout ``root``'s CLI with this virtual environment (its ``src`` first)."""
    return [sys.executable, str(root / "cli.py")]
