"""`ssmd normalize`: run the normalizer over captured Kalshi frames and print the records."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ssmd.cli.output import print_text, show_table

app = typer.Typer()

# Units per dollar or contract in E6 fields (schemas/ssmd.capnp `scaleE6`); the
# extension is imported only when a command runs, so `ssmd --help` and the
# config commands work without it.
SCALE_E6 = 1_000_000


def _dollars(value: Any) -> str:
    return "?" if value is None else f"{value / SCALE_E6:g}"


def _summary(record: dict[str, Any]) -> str:
    kind = record["kind"]
    if kind == "trade":
        return f"{_dollars(record['size_e6'])} @ ${_dollars(record['price_e6'])} taker {record['taker_outcome']}"
    if kind == "book_snapshot":
        best_yes = max((p for p, _ in record["yes"]), default=None)
        best_no = max((p for p, _ in record["no"]), default=None)
        ask = None if best_no is None else SCALE_E6 - best_no
        return f"{len(record['yes'])} yes / {len(record['no'])} no levels, {_dollars(best_yes)} x {_dollars(ask)}"
    if kind == "book_delta":
        return f"{record['side']} {_dollars(record['price_e6'])} {record['delta_e6'] / SCALE_E6:+g}"
    if kind == "ticker":
        return f"bid {_dollars(record['yes_bid_e6'])} ask {_dollars(record['yes_ask_e6'])} vol {_dollars(record['volume_e6'])}"
    if kind == "lifecycle":
        return f"{record['event_type_text']} {record['result'] or ''}".strip()
    return str(record.get("title") or "")


@app.command()
def normalize(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="JSONL file, one raw Kalshi frame per line (default: a bundled sample)."
        ),
    ] = None,
) -> None:
    """Normalize captured Kalshi frames and print every record and problem.

    Example: ssmd normalize capture.jsonl
    """
    from ssmd import core

    if path is None:
        data = resources.files("ssmd.data").joinpath("kalshi_sample.jsonl").read_bytes()
        source = "bundled sample"
    else:
        data = path.read_bytes()
        source = str(path)
    frames = [line for line in data.splitlines() if line.strip()]
    now = time.time_ns()
    batch = core.normalize_kalshi(frames, [now] * len(frames), 1)
    records = core.decode_records(batch.data)

    print_text(f"{len(frames)} frames from {source} -> {len(records)} normalized records")
    table = Table()
    for column in ("frame", "type", "kind", "ticker", "sid/seq", "values"):
        table.add_column(column)
    for (frame, record_type, ticker, _, _), record in zip(batch.records, records, strict=True):
        table.add_row(
            str(frame),
            record_type,
            record["kind"],
            ticker,
            f"{record['sid']}/{record['seq']}",
            _summary(record),
        )
    show_table(table)
    if batch.problems:
        problems = Table(title="problems (the raw frame is always kept)")
        for column in ("frame", "problem", "detail"):
            problems.add_column(column)
        for frame, problem, detail in batch.problems:
            problems.add_row(str(frame), problem, detail)
        show_table(problems)
