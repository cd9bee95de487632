"""Helpers shared by the config tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from ssmd.cli import env as env_cli
from ssmd.cli import feed as feed_cli
from ssmd.cli import meta as meta_cli
from ssmd.cli import schema as schema_cli

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "exchanges"

# The command groups exactly as ssmd.cli mounts them, without importing every
# other group (some need the compiled extension).
APP = typer.Typer()
APP.registered_commands.extend(meta_cli.app.registered_commands)
APP.add_typer(feed_cli.app, name="feed")
APP.add_typer(schema_cli.app, name="schema")
APP.add_typer(env_cli.app, name="env")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below root (relative path -> bytes), to prove a command changed nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
