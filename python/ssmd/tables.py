"""Rich tables on any console: folded to fit a terminal, one row per line anywhere else.

Rich folds cells at 80 columns (or $COLUMNS) when its output is not a terminal, which
splits a row over several lines; a program or `grep` reading a pipe or a file expects
one row per line, so there a table is printed at its natural width.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = ["write_table"]

_UNBOUNDED = 1_000_000  # columns: wider than any table


def write_table(console: Console, table: Table) -> None:
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    # Of the console's own class, so that its handling of a closed pipe still holds.
    wide = type(console)(file=console.file, highlight=False, soft_wrap=True, width=needed)
    wide.print(table)
