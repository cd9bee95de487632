"""`ssmd day`: trading days, started and ended through Temporal, kept as records."""

from __future__ import annotations

from typing import Any

import typer

from ssmd.cli.ops import WaitOption, resolve, run_kind
from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, JsonOption
from ssmd.cli.output import print_json, print_table, print_text
from ssmd.cli.worker import TemporalAddressOption

app = typer.Typer(help="Trading days: start, end, roll, status, history.", no_args_is_help=True)

HISTORY_COLUMNS = (
    "id",
    "state",
    "started_at",
    "ended_at",
    "records",
    "bytes",
    "gaps",
    "quality_score",
    "verified",
)


@app.command()
def start(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    wait: bool = WaitOption,
    json_: JsonOption = False,
) -> None:
    """Start the trading day (DailyStartup)."""
    run_kind(env, "startup", config_dir, data_dir, temporal_address, wait, json_)


@app.command()
def end(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    wait: bool = WaitOption,
    json_: JsonOption = False,
) -> None:
    """End the trading day (DailyTeardown): stop, seal, verify, record its figures."""
    run_kind(env, "teardown", config_dir, data_dir, temporal_address, wait, json_)


@app.command()
def roll(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    wait: bool = WaitOption,
    json_: JsonOption = False,
) -> None:
    """End the day and start the next one (DayRoll)."""
    run_kind(env, "roll", config_dir, data_dir, temporal_address, wait, json_)


def _days(env: str, config_dir: Any, data_dir: str | None) -> Any:
    from ssmd.ops.days import Days
    from ssmd.secmaster.db import open_store

    resolved = resolve(env, config_dir, data_dir, None)
    from ssmd.cli.exits import component_errors

    with component_errors():
        store = open_store(resolved)
    return Days(store, resolved.name)


def _row(day: dict[str, Any]) -> list[Any]:
    verification = day.get("verification") or {}
    verified = None if not verification else ("ok" if verification.get("ok") else "FAILED")
    return [day.get(c) for c in HISTORY_COLUMNS[:-1]] + [verified]


@app.command()
def status(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    json_: JsonOption = False,
) -> None:
    """The current trading day (or the last one, when none runs)."""
    days = _days(env, config_dir, data_dir)
    with days.store:
        day = days.current()
        last = days.history(1)
    shown = day or (last[0] if last else None)
    if json_:
        print_json({"current": day, "last": None if day else shown})
        return
    if shown is None:
        print_text(f"no trading day recorded for {env}")
        return
    print_table(
        "current trading day" if day else "last trading day", HISTORY_COLUMNS, [_row(shown)]
    )
    problems = (shown.get("verification") or {}).get("problems") or []
    for p in problems:
        print_text(f"problem: {p}")


@app.command()
def history(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    limit: int = typer.Option(30, help="How many days, newest first."),
    json_: JsonOption = False,
) -> None:
    """Trading days, newest first, with their figures and verification."""
    days = _days(env, config_dir, data_dir)
    with days.store:
        rows = days.history(limit)
    if json_:
        print_json(rows)
    else:
        print_table(f"trading days of {env}", HISTORY_COLUMNS, [_row(d) for d in rows])
