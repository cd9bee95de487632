"""What the config commands share: the --config-dir/--json options, tables, JSON and errors.

Human output goes to stdout as tables; `--json` prints one JSON document
instead. Errors go to stderr (or, with --json, as {"ok": false, "error": ...}
on stdout) and exit with status 1. A table sent to a pipe or a file keeps one row
per line whatever its width; only a terminal's width folds cells.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ssmd.config.tree import CONFIG_DIR_ENV, ConfigTree
from ssmd.exceptions import ConfigError
from ssmd.tables import write_table

ConfigDirOption = Annotated[
    Path | None,
    typer.Option(
        "--config-dir",
        envvar=CONFIG_DIR_ENV,
        metavar="DIR",
        help=f"The exchanges/ tree (default: ${CONFIG_DIR_ENV}, else ./exchanges).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for programs) instead of tables.")
]

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def tree_at(config_dir: Path | None) -> ConfigTree:
    return ConfigTree.at(config_dir)


def print_json(data: Any) -> None:
    # Plain print: rich would re-wrap long lines and break machine parsing.
    print(json.dumps(data, indent=2, default=str))


def print_text(text: str) -> None:
    stdout.print(text, markup=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    show_table(table)


def show_table(table: Table) -> None:
    """Print a table on stdout: folded to fit a terminal, one row per line anywhere else."""
    write_table(stdout, table)


def warn_broken(count: int) -> None:
    if count:
        stderr.print(
            f"warning: {count} file(s) could not be read; run `ssmd validate`", markup=False
        )


@contextmanager
def reporting(as_json: bool) -> Iterator[None]:
    """Turn a ConfigError into a clean message and exit status 1."""
    try:
        yield
    except ConfigError as error:
        if as_json:
            print_json({"ok": False, "error": str(error)})
        else:
            stderr.print(f"error: {error}", markup=False)
        raise typer.Exit(1) from None
