"""`ssmd init|validate|diff|commit`: the config tree as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ssmd.cli.output import (
    ConfigDirOption,
    JsonOption,
    print_json,
    print_table,
    print_text,
    reporting,
    stderr,
    tree_at,
)
from ssmd.config.bootstrap import init_tree
from ssmd.config.gitops import commit_changes, pending_changes
from ssmd.config.problems import display_path
from ssmd.config.validate import validate_tree

app = typer.Typer()


@app.command("init")
def init(
    directory: Annotated[
        Path | None, typer.Argument(help="Tree to create (default: --config-dir).")
    ] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an exchanges/ tree with the Kalshi feed, environments and schema registry.

    Refuses to overwrite any existing file. The registry is hashed from the schema
    shipped with ssmd (`ssmd schema path`).

    Example: ssmd init ./exchanges
    """
    with reporting(as_json):
        tree = tree_at(directory or config_dir)
        result = init_tree(tree)
        if as_json:
            print_json({"ok": True, "written": [str(p) for p in result.written]})
            return
        for path in result.written:
            print_text(f"wrote {display_path(path)}")


@app.command("validate")
def validate(config_dir: ConfigDirOption = None, as_json: JsonOption = False) -> None:
    """Check every file and every cross-file reference; exit 1 listing all problems.

    Example: ssmd validate --config-dir exchanges
    """
    with reporting(as_json):
        problems = validate_tree(config_dir)
        if as_json:
            print_json({"ok": not problems, "problems": [p.to_json() for p in problems]})
        elif problems:
            for problem in problems:
                stderr.print(f"error: {problem}", markup=False)
            stderr.print(
                f"{len(problems)} problem(s) in {display_path(tree_at(config_dir).root)}",
                markup=False,
            )
        else:
            print_text(f"{display_path(tree_at(config_dir).root)}: valid")
        if problems:
            raise typer.Exit(1)


@app.command("diff")
def diff(config_dir: ConfigDirOption = None, as_json: JsonOption = False) -> None:
    """Show uncommitted changes of the config tree (git).

    Example: ssmd diff
    """
    with reporting(as_json):
        pending = pending_changes(tree_at(config_dir))
        if as_json:
            print_json(
                {
                    "repository": str(pending.repo),
                    "changes": [{"status": c.status, "path": c.path} for c in pending.changes],
                    "patch": pending.patch,
                }
            )
        elif not pending.changes:
            print_text("no pending changes")
        else:
            print_table(
                "Pending changes", ["status", "path"], [(c.status, c.path) for c in pending.changes]
            )
            print(pending.patch, end="")


@app.command("commit")
def commit(
    message: Annotated[str, typer.Option("-m", "--message", help="Commit message.")],
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate, then commit the config tree's changes (only those paths) with git.

    Example: ssmd commit -m "kalshi-dev: keep 72h in NATS"
    """
    with reporting(as_json):
        result = commit_changes(tree_at(config_dir), message)
        if as_json:
            print_json(
                {
                    "ok": True,
                    "commit": result.commit,
                    "changes": [{"status": c.status, "path": c.path} for c in result.changes],
                }
            )
        elif result.commit is None:
            print_text("nothing to commit")
        else:
            print_text(f"committed {len(result.changes)} file(s) as {result.commit[:12]}")
