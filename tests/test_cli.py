"""One CLI: shared options spelled, required and documented alike in every command; `ssmd
data` names what it has instead of printing an empty table; `ssmd data issues --feed` files,
lists and resolves a further venue's issues; piped tables keep one row per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from _support import ROOT
from ssmd.archiver.manifest import build_manifest, write_manifest
from ssmd.cli import app
from ssmd.cli.output import print_table
from ssmd.config import load_environment
from ssmd.store.base import open_store

EXCHANGES = ROOT / "exchanges"
DAY = date(2026, 7, 20)


def _commands(group: Any = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(`ssmd` subcommand path, its click command) for every command, groups walked."""
    group = group if group is not None else typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _options(name: str) -> dict[str, Any]:
    """Command -> its parameter called `name`, for every command that has one."""
    return {
        path: param
        for path, command in _commands()
        for param in command.params
        if param.name == name
    }


def test_every_environment_command_requires_env_or_ssmd_env() -> None:
    envs = _options("env")
    assert {"up", "connector run", "archiver run", "gateway run", "market list"} <= set(envs)
    assert {"data inventory", "data gaps", "data quality"} <= set(envs)
    for path, param in envs.items():
        assert param.required and param.envvar == "SSMD_ENV", path


def test_shared_options_read_alike_everywhere() -> None:
    data_dirs = _options("data_dir")
    assert len(data_dirs) >= 10
    assert len({(p.metavar, getattr(p, "help", None)) for p in data_dirs.values()}) == 1
    assert "$SSMD_DATA_DIR" in (getattr(next(iter(data_dirs.values())), "help", None) or "")
    for path, param in _options("config_dir").items():
        assert param.envvar == "SSMD_CONFIG_DIR", path
    for path, param in _options("as_json").items():
        assert getattr(param, "help", None), f"{path} --json has no help"
    for path, param in _options("feed").items():
        if path.startswith("data "):
            assert not param.required, path


@pytest.fixture
def archived(tmp_path: Path) -> Path:
    """A data dir holding one day of kalshi-sim's raw archive (its manifest)."""
    env = load_environment("kalshi-sim", EXCHANGES, environ={"SSMD_DATA_DIR": str(tmp_path)})
    store = open_store(env.raw_store)
    write_manifest(store, build_manifest(store, "kalshi-sim", "kalshi", "raw", DAY))
    return tmp_path


def _data(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    common = ["--config-dir", str(EXCHANGES), "--data-dir", str(data_dir)]
    return CliRunner().invoke(app, ["data", *args, *common], env={"SSMD_ENV": "", **(env or {})})


def test_data_without_env_is_refused_and_ssmd_env_names_it(archived: Path) -> None:
    refused = _data(archived, "inventory")
    assert refused.exit_code == 2 and "Missing option '--env'" in refused.output
    named = _data(archived, "inventory", "--json", env={"SSMD_ENV": "kalshi-sim"})
    assert named.exit_code == 0, named.output
    assert '"date": "2026-07-20"' in named.stdout


def test_an_environment_without_data_names_those_with_data(archived: Path) -> None:
    result = _data(archived, "inventory", "--env", "kalshi-dev")
    assert result.exit_code == 1 and result.stdout == ""
    assert "no data for environment kalshi-dev in file://" in result.stderr
    assert "environments with data there: kalshi-sim. Fix: pass --env" in result.stderr


def test_dates_without_data_name_the_days_with_data(archived: Path) -> None:
    result = _data(archived, "inventory", "--env", "kalshi-sim", "--from", "2026-07-21")
    assert result.exit_code == 1
    assert "has no data for feed kalshi from 2026-07-21 to today" in result.stderr
    assert "it has data for kalshi from 2026-07-20 to 2026-07-20" in result.stderr
    for command in ("gaps", "quality"):
        missing = _data(archived, command, "--env", "kalshi-sim", "--date", "2026-07-19")
        assert missing.exit_code == 1, command
        assert "has no data for feed kalshi on 2026-07-19" in missing.stderr, command


def test_gaps_and_quality_default_to_the_environment_feed(archived: Path) -> None:
    quality = _data(archived, "quality", "--env", "kalshi-sim", "--date", "2026-07-20", "--json")
    assert quality.exit_code == 0, quality.output
    assert '"feed": "kalshi"' in quality.stdout
    gaps = _data(archived, "gaps", "--env", "kalshi-sim", "--date", "2026-07-20")
    assert gaps.exit_code == 0 and "Gaps of kalshi on 2026-07-20" in gaps.stdout


WINDOW = ("--from", "2026-07-20T12:00:00Z", "--to", "2026-07-20T12:05:00Z")


def _issues(data_dir: Path, *args: str) -> Result:
    """`ssmd data issues ...` in multi-sim (feeds kalshi, polymarket, kraken): its database
    under the data dir, its NATS `embedded` (the journal entries wait in the outbox)."""
    return _data(data_dir, "issues", *args, "--env", "multi-sim")


def _ids(result: Result) -> list[tuple[int, str | None]]:
    assert result.exit_code == 0, result.output
    return [(i["id"], i["ticker"]) for i in json.loads(result.stdout)]


def test_data_issues_of_a_further_venue_are_filed_and_listed_by_feed(tmp_path: Path) -> None:
    kraken = _issues(tmp_path, "report", "--feed", "kraken", "--ticker", "BTC/USD", *WINDOW,
                     "--description", "the book is crossed", "--by", "alice", "--json")  # fmt: skip
    assert kraken.exit_code == 0, kraken.output
    made = json.loads(kraken.stdout)
    assert (made["feed"], made["ticker"], made["reporter"]) == ("kraken", "BTC/USD", "alice")
    own = _issues(tmp_path, "report", "--ticker", "KXBTCD-26JUL2017-T1", *WINDOW,
                  "--description", "trades missing", "--json")  # fmt: skip
    mine = json.loads(own.stdout)
    assert mine["feed"] == "kalshi"

    # Each feed lists its own; the environment's feed without --feed.
    assert _ids(_issues(tmp_path, "list", "--feed", "kraken", "--json")) == [
        (made["id"], "BTC/USD")
    ]
    assert _ids(_issues(tmp_path, "list", "--json")) == [(mine["id"], "KXBTCD-26JUL2017-T1")]
    assert _ids(_issues(tmp_path, "list", "--feed", "polymarket", "--json")) == []
    table = _issues(tmp_path, "list", "--feed", "kraken")
    assert "feed kraken" in table.stdout and "BTC/USD" in table.stdout

    # `ssmd data quality --feed kraken` shows it, and how to resolve it.
    env = load_environment("multi-sim", EXCHANGES, {"data_dir": str(tmp_path)}, feed="kraken")
    store = open_store(env.raw_store)
    write_manifest(store, build_manifest(store, "multi-sim", "kraken", "raw", DAY))
    quality = _data(tmp_path, "quality", "--env", "multi-sim", "--feed", "kraken",
                    "--date", DAY.isoformat(), env={"COLUMNS": "200"})  # fmt: skip
    assert quality.exit_code == 0, quality.output
    assert "`ssmd data issues resolve ID --feed kraken` when fixed" in quality.stdout

    # Resolving takes the issue's feed: another venue's id is refused, not resolved.
    wrong = _issues(tmp_path, "resolve", str(made["id"]), "--note", "checked")
    assert wrong.exit_code == 1
    assert f"data issue {made['id']} is of feed kraken, not kalshi. Fix: --feed kraken" in (
        wrong.stderr
    )
    done = _issues(tmp_path, "resolve", str(made["id"]), "--feed", "kraken", "--note", "checked",
                   "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "resolved"
    assert _ids(_issues(tmp_path, "list", "--feed", "kraken", "--json")) == []


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["report", *WINDOW, "--description", "x"],
        ["resolve", "1", "--note", "x"],
    ],
)
def test_data_issues_of_an_unknown_feed_name_the_environments_feeds(
    tmp_path: Path, command: list[str]
) -> None:
    refused = _issues(tmp_path, *command, "--feed", "coinbase")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "does not capture feed 'coinbase' (it captures kalshi, polymarket, kraken)" in (
        refused.stderr
    )
    assert "Fix: --feed one of kalshi, polymarket, kraken" in refused.stderr


def test_piped_tables_keep_one_row_per_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    row = ["2026-07-20", "kalshi", "orderbook", "123456", "7890123", "42", "sealed", "0.9995"]
    columns = ["date", "feed", "data_type", "records", "bytes", "markets", "status", "quality"]
    print_table("Inventory of kalshi-sim", columns, [row, row])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) > 80  # wider than the terminal it pretends to be
    assert sum(all(cell in line for cell in row) for line in lines) == 2


def test_the_archive_table_of_ssmd_up_keeps_one_row_per_line_when_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssmd.up.display import ConsoleDisplay
    from ssmd.up.report import ArchiveReport

    monkeypatch.setenv("COLUMNS", "60")
    row = {
        "feed": "kalshi",
        "data_type": "orderbook_snapshot_long_name",
        "sealed_records": 123_456_789,
        "files": 4_321,
        "bytes": 9_876_543_210,
        "spooled_records": 98_765_432,
    }
    display = ConsoleDisplay("kalshi-sim")
    display.final(ArchiveReport([row], ["2026-07-20", "2026-07-21"], 0), [], [])
    lines = capsys.readouterr().out.splitlines()
    cells = ["orderbook_snapshot_long_name", "123,456,789", "4,321", "98,765,432"]
    assert max(len(line) for line in lines) > 60
    assert sum(all(cell in line for cell in cells) for line in lines) == 1


def test_ssmd_up_status_lines_stay_whole_when_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssmd.up.display import ConsoleDisplay
    from ssmd.up.report import ArchiveReport

    monkeypatch.setenv("COLUMNS", "60")
    display = ConsoleDisplay("kalshi-sim")
    display.final(ArchiveReport([], ["2026-07-20"], 0), [], [])
    lines = capsys.readouterr().out.splitlines()
    summary = [line for line in lines if "records archived" in line]
    assert len(summary) == 1 and summary[0].rstrip().endswith("if nothing runs then)")


@pytest.mark.parametrize(("argv", "code"), [(["--version"], 0), (["no-such-command"], 2)])
def test_the_exit_code_and_output_survive_once_the_temporal_client_is_loaded(
    argv: list[str], code: int
) -> None:
    """With temporalio's bridge loaded, `ssmd` leaves without interpreter teardown (its
    Tokio threads can abort a finished command there); the code and the output stay."""
    import subprocess
    import sys

    script = (
        "import sys, temporalio.bridge.temporal_sdk_bridge\n"
        "from ssmd.cli import main\n"
        f"sys.argv = ['ssmd', *{argv!r}]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, done.stderr
    if code == 0:
        assert done.stdout.startswith("ssmd "), done.stdout
    else:
        assert "no-such-command" in done.stderr, done.stderr
