"""`ssmd data export`: Hive-partitioned Parquet (or CSV/JSONL), incremental, open data,
damaged files, and `scan` reading the export."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

import ssmd.data
from _support import ROOT
from _support.datafix import DAY1, DAY2, ENV, Capture
from ssmd.cli import app
from ssmd.data.export import STATE_FILE

pytestmark = pytest.mark.xdist_group("data_api")

EXCHANGES = ROOT / "exchanges"


def _export(data_dir: Path, *args: str) -> Result:
    common = ["--env", ENV, "--config-dir", str(EXCHANGES), "--data-dir", str(data_dir)]
    return CliRunner().invoke(app, ["data", "export", *common, *args])


def _summary(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


@pytest.fixture
def data(captured: Capture, tmp_path: Path) -> Path:
    """A copy of the captured data dir, for tests that export into it or change it."""
    copy = tmp_path / "data"
    shutil.copytree(captured.data_dir, copy)
    return copy


def test_parquet_partitions_sorted_compressed_with_statistics(
    captured: Capture, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = _summary(
        _export(
            captured.data_dir,
            "--from",
            "2026-07-20",
            "--to",
            "2026-07-21",
            "--out",
            str(out),
            "--json",
        )
    )
    assert (
        "trade/2026-07-20" in summary["written"] and "book_level/2026-07-21" in summary["written"]
    )
    part = out / "type=trade" / "date=2026-07-20" / "part-0.parquet"
    meta = pq.ParquetFile(part).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    stats = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).statistics
        for i in range(meta.num_columns)
    }
    assert stats["ticker"].has_min_max and stats["exchange_ts"].has_min_max
    assert meta.metadata[b"ssmd.type"] == b"trade" and meta.metadata[b"ssmd.open"] == b"false"
    exported = pl.read_parquet(part)
    assert exported.equals(exported.sort("ticker", "exchange_ts", maintain_order=True))
    archived = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=captured.data_dir).collect()
    assert exported.sort("ticker", "seq", "trade_id").equals(
        archived.sort("ticker", "seq", "trade_id")
    )
    assert exported.schema["price_e6"] == pl.Int64 and exported.schema["price"] == pl.Float64


def test_scan_reads_the_export_where_it_is_current(data: Path) -> None:
    before = ssmd.data.scan("book_delta", DAY1, DAY2, env=ENV, data_dir=data).collect()
    _summary(
        _export(data, "--from", "2026-07-20", "--to", "2026-07-21", "--type", "book", "--json")
    )
    lazy = ssmd.data.scan("book_delta", DAY1, DAY2, env=ENV, data_dir=data)
    assert "parquet" in lazy.explain().lower() and "ssmd archive" not in lazy.explain()
    after = lazy.collect()
    assert after.sort("ticker", "receive_ts", "seq").equals(
        before.sort("ticker", "receive_ts", "seq")
    )
    ticker = before["ticker"][0]
    one = ssmd.data.scan(
        "book_delta", DAY1, DAY2, tickers=[ticker], env=ENV, data_dir=data
    ).collect()
    assert one.height == before.filter(pl.col("ticker") == ticker).height


def test_only_days_whose_manifest_changed_are_exported_again(data: Path) -> None:
    args = ("--from", "2026-07-20", "--to", "2026-07-21", "--type", "trade,ticker", "--json")
    first = _summary(_export(data, *args))
    assert len(first["written"]) == 4  # type: ignore[arg-type]
    again = _summary(_export(data, *args))
    assert again["written"] == [] and len(again["unchanged"]) == 4  # type: ignore[arg-type]
    manifest = next((data / "normalized").rglob("v1/trade/2026/07/21/manifest.json"))
    content = orjson.loads(manifest.read_bytes())
    content["created_at"] = "2026-07-22T00:00:00+00:00"  # as a seal of late data rewrites it
    manifest.write_bytes(orjson.dumps(content))
    third = _summary(_export(data, *args))
    assert third["written"] == ["trade/2026-07-21"]


def test_open_data_is_exported_only_when_asked_and_marked(captured: Capture, data: Path) -> None:
    day = captured.open_day.isoformat()
    refused = _export(data, "--from", day, "--type", "trade")
    assert refused.exit_code == 1
    assert f"trade/{day} hold only open data" in refused.stderr
    assert "Fix: pass --include-open" in refused.stderr
    summary = _summary(_export(data, "--from", day, "--type", "trade", "--include-open", "--json"))
    assert summary["open"] == [f"trade/{day}"]
    state = orjson.loads((data / "export" / ENV / "kalshi" / STATE_FILE).read_bytes())
    assert state["partitions"][f"trade/{day}"]["open"] is True
    # scan does not take open data from the export, which would go stale
    lazy = ssmd.data.scan("trade", day, env=ENV, data_dir=data)
    assert "ssmd archive" in lazy.explain()


def test_a_damaged_file_stops_the_export_unless_allowed(data: Path, tmp_path: Path) -> None:
    victim = sorted((data / "normalized").rglob("trade/**/data.capnp.zst"))[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    args = ("--from", "2026-07-20", "--to", "2026-07-21", "--type", "trade")
    stopped = _export(data, *args, "--out", str(tmp_path / "a"))
    assert stopped.exit_code == 1
    assert f"{victim.as_uri()}: corrupt zstd frame at byte" in stopped.stderr
    assert "--allow-partial" in stopped.stderr
    summary = _summary(
        _export(data, *args, "--out", str(tmp_path / "b"), "--allow-partial", "--json")
    )
    skipped = summary["skipped_files"]
    assert [s["file"] for s in skipped] == [victim.as_uri()]  # type: ignore[union-attr,index]
    again = _summary(
        _export(data, *args, "--out", str(tmp_path / "b"), "--allow-partial", "--json")
    )
    assert "trade/2026-07-20" in again["written"]  # a partial partition is tried again
    human = _export(data, *args, "--out", str(tmp_path / "c"), "--allow-partial")
    assert f"left out (damaged): {victim.as_uri()}" in human.stdout


def test_a_folder_holding_something_else_is_refused(captured: Capture, tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8")
    result = _export(captured.data_dir, "--from", "2026-07-20", "--out", str(out))
    assert result.exit_code == 1
    assert f"{out} is not empty (cat.jpg, ...) and holds no ssmd export" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cat.jpg"]


def test_tickers_series_and_text_formats(captured: Capture, tmp_path: Path) -> None:
    ticker = captured.tickers[0]
    series = ticker.split("-")[0]
    base = ("--from", "2026-07-20", "--to", "2026-07-21", "--type", "trade")
    _summary(
        _export(
            captured.data_dir, *base, "--tickers", ticker, "--out", str(tmp_path / "t"), "--json"
        )
    )
    picked = pl.read_parquet(tmp_path / "t" / "type=trade" / "*" / "*.parquet")
    assert set(picked["ticker"]) == {ticker}
    _summary(
        _export(
            captured.data_dir,
            *base,
            "--series",
            series,
            "--format",
            "csv",
            "--out",
            str(tmp_path / "s"),
            "--json",
        )
    )
    rows = pl.read_csv(tmp_path / "s" / "type=trade" / "date=2026-07-20" / "part-0.csv")
    assert rows.height > 0 and all(t.startswith(f"{series}-") for t in rows["ticker"])
    _summary(
        _export(
            captured.data_dir, *base, "--format", "jsonl", "--out", str(tmp_path / "j"), "--json"
        )
    )
    lines = (
        (tmp_path / "j" / "type=trade" / "date=2026-07-21" / "part-0.jsonl")
        .read_text()
        .splitlines()
    )
    assert lines and all(isinstance(json.loads(line)["price_e6"], int) for line in lines)
    typo = _export(
        captured.data_dir, *base, "--tickers", ticker.lower(), "--out", str(tmp_path / "x")
    )
    assert typo.exit_code == 1 and f"closest: {ticker}" in typo.stderr
    bad_type = _export(
        captured.data_dir, *base[:4], "--type", "trades", "--out", str(tmp_path / "y")
    )
    assert (
        bad_type.exit_code == 1 and "unknown data type 'trades'; closest: trade" in bad_type.stderr
    )


def test_an_unknown_environment_names_the_known_ones(captured: Capture) -> None:
    common = ["--config-dir", str(EXCHANGES), "--data-dir", str(captured.data_dir)]
    result = CliRunner().invoke(
        app, ["data", "export", "--env", "kalshi-sm", "--from", "2026-07-20", *common]
    )
    assert result.exit_code == 2
    assert "no environment named 'kalshi-sm'; expected one of: kalshi-dev, kalshi-sim" in (
        result.stderr
    )


def test_late_data_in_the_spool_is_read_from_the_archive_not_the_export(data: Path) -> None:
    _summary(_export(data, "--from", "2026-07-20", "--type", "trade", "--json"))
    exported = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=data)
    assert "ssmd archive" not in exported.explain()
    sealed = sorted((data / "normalized").rglob("trade/2026/07/20/*/data.capnp.zst"))[0]
    key = sealed.relative_to(data / "normalized").as_posix()
    spool = data / "archiver" / ENV / "spool" / "files" / "normalized" / (key + ".spool")
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(sealed.read_bytes())  # late records of that day, not sealed yet
    late = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=data)
    assert "ssmd archive" in late.explain()
    extra = pl.read_parquet(next((data / "export").rglob("type=trade/date=2026-07-20/*.parquet")))
    assert late.collect().height > extra.height
    sealed_only = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=data, include_open=False)
    assert "ssmd archive" not in sealed_only.explain()


def test_row_groups_are_ordered_by_ticker_so_filters_skip_them(
    captured: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssmd.data.export

    monkeypatch.setattr(ssmd.data.export, "ROW_GROUP", 50)
    out = tmp_path / "out"
    _summary(
        _export(
            captured.data_dir,
            "--from",
            "2026-07-20",
            "--type",
            "ticker",
            "--out",
            str(out),
            "--json",
        )
    )
    meta = pq.ParquetFile(out / "type=ticker" / "date=2026-07-20" / "part-0.parquet").metadata
    assert meta.num_row_groups > 3
    assert meta.metadata[b"ssmd.scale_e6"] == b"1000000"
    column = meta.schema.names.index("ticker")
    ranges = [
        (
            meta.row_group(i).column(column).statistics.min,
            meta.row_group(i).column(column).statistics.max,
        )
        for i in range(meta.num_row_groups)
    ]
    # each row group covers a run of tickers after the one before: a ticker filter
    # matches one or two of them, and the reader skips the others by their statistics
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))


def test_progress_moves_within_a_partition_and_ends_at_the_total(
    captured: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssmd.data.export
    from ssmd.data.export import ExportRequest, export
    from ssmd.data.source import Dataset

    monkeypatch.setattr(ssmd.data.export, "BATCH_BYTES", 2048)  # a few markets a batch
    planned: list[int] = []
    steps: list[int] = []
    export(
        Dataset.open(ENV, data_dir=captured.data_dir),
        ExportRequest(kinds=["book_delta"], days=[DAY1], out=tmp_path / "out"),
        on_plan=planned.append,
        on_progress=steps.append,
    )
    assert len(planned) == 1 and planned[0] > 0
    assert len(steps) > 3 and all(s >= 0 for s in steps) and sum(steps) == planned[0]
