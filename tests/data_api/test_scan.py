"""ssmd.data.scan and ssmd.data.raw over the captured archive (sealed days and spool)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import capnp  # type: ignore[import-untyped]
import orjson
import polars as pl
import pytest

import ssmd.data
import ssmd.records
from _support import ROOT
from _support.datafix import DAY1, DAY2, ENV, START, Capture
from ssmd import core
from ssmd.exceptions import ArchiveError, DataError

START_TIME = datetime.fromtimestamp(START, UTC)

pytestmark = pytest.mark.xdist_group("data_api")


def _frames_of(cap: Capture, msgtype: str) -> list[bytes]:
    batch = core.normalize_kalshi(cap.frames, cap.receive_ns, 7)
    return [cap.frames[i] for i, k in enumerate(batch.kinds) if core.FRAME_KINDS[k] == msgtype]


def test_scan_reads_every_trade_of_a_range_across_days(captured: Capture) -> None:
    trades = ssmd.data.scan(
        "trade", DAY1, DAY2, env=ENV, data_dir=captured.data_dir, include_open=False
    ).collect()
    expected = core.normalize_kalshi(captured.frames, captured.receive_ns, 7)
    want = sorted(
        (r["ticker"], r["trade_id"], r["price_e6"], r["size_e6"])
        for r in core.decode_records(expected.data)
        if r["kind"] == "trade"
    )
    got = sorted(trades.select("ticker", "trade_id", "price_e6", "size_e6").iter_rows())
    assert want and got == want
    assert set(trades["receive_ts"].dt.date()) == {DAY1, DAY2}


def test_ticker_and_time_filters_give_what_a_filter_of_everything_gives(captured: Capture) -> None:
    everything = ssmd.data.scan("book_delta", DAY1, DAY2, env=ENV, data_dir=captured.data_dir)
    start = datetime(2026, 7, 20, 23, 59, 10, tzinfo=UTC)
    end = datetime(2026, 7, 21, 0, 0, 20, tzinfo=UTC)
    picked = [*captured.tickers[:2], captured.tickers[-1]]
    got = ssmd.data.scan(
        "book_delta", start, end, tickers=picked, env=ENV, data_dir=captured.data_dir
    ).collect()
    want = everything.filter(
        pl.col("ticker").is_in(picked)
        & (pl.col("receive_ts") >= start)
        & (pl.col("receive_ts") < end)
    ).collect()
    assert got.height > 0 and set(got["ticker"]) == set(picked)
    assert got.sort("ticker", "seq").equals(want.sort("ticker", "seq"))


def test_strings_name_days_and_times(captured: Capture) -> None:
    by_day = ssmd.data.scan("trade", "2026-07-21", env=ENV, data_dir=captured.data_dir)
    by_time = ssmd.data.scan(
        "trade", "2026-07-21T00:00:00Z", "2026-07-22T00:00:00Z", env=ENV, data_dir=captured.data_dir
    )
    day = by_day.collect()
    assert day.height > 0 and set(day["receive_ts"].dt.date()) == {DAY2}
    assert day.equals(by_time.collect())


def test_open_data_in_the_spool_is_read_unless_left_out(captured: Capture) -> None:
    day = captured.open_day
    opened = ssmd.data.scan("trade", day, env=ENV, data_dir=captured.data_dir).collect()
    first_minute = ssmd.data.scan(
        "trade", START_TIME, START_TIME + timedelta(seconds=60), env=ENV, data_dir=captured.data_dir
    ).collect()
    assert opened.height == first_minute.height > 0
    assert sorted(opened["trade_id"]) == sorted(first_minute["trade_id"])
    with pytest.raises(DataError, match="days with trade data"):
        ssmd.data.scan("trade", day, env=ENV, data_dir=captured.data_dir, include_open=False)


def test_projection_and_row_limits_reach_the_files(captured: Capture) -> None:
    lazy = ssmd.data.scan("ticker", DAY1, DAY2, env=ENV, data_dir=captured.data_dir)
    assert lazy.select("ticker", "yes_bid_e6").collect().columns == ["ticker", "yes_bid_e6"]
    assert lazy.head(7).collect().height == 7


def test_seed_float_columns_are_those_of_the_records(captured: Capture) -> None:
    """price and size as pycapnp reads them from the records (the normalizer's values)."""
    schema = capnp.load(str(ROOT / "schemas" / "ssmd.capnp"))
    data = core.normalize_kalshi(captured.frames, captured.receive_ns, 7).data
    seeds = {
        r.trade.tradeId: (r.trade.price, r.trade.size)
        for r in schema.Record.read_multiple_bytes_packed(data)
        if r.which() == "trade"
    }
    trades = ssmd.data.scan("trade", DAY1, DAY2, env=ENV, data_dir=captured.data_dir).collect()
    assert trades.height == len(seeds)
    for trade_id, price, size in trades.select("trade_id", "price", "size").iter_rows():
        assert (price, size) == seeds[trade_id]


def test_raw_gives_back_every_frame_byte_for_byte(captured: Capture) -> None:
    frames = ssmd.data.raw(DAY1, DAY2, env=ENV, data_dir=captured.data_dir).collect()
    assert sorted(frames["frame"]) == sorted(captured.frames)
    assert frames["stream_seq"].n_unique() == frames.height
    trades = ssmd.data.raw(
        DAY1, DAY2, msgtypes=["trade"], env=ENV, data_dir=captured.data_dir
    ).collect()
    assert sorted(trades["frame"]) == sorted(_frames_of(captured, "trade"))
    assert set(trades["msgtype"]) == {"trade"}


def test_an_unknown_type_or_ticker_names_the_closest_known(captured: Capture) -> None:
    with pytest.raises(DataError, match=r"unknown data type 'trades'; closest: trade"):
        ssmd.data.scan("trades", DAY1, env=ENV, data_dir=captured.data_dir)
    typo = captured.tickers[0][:-1] + "X"
    with pytest.raises(DataError) as caught:
        ssmd.data.scan("book_delta", DAY1, tickers=[typo], env=ENV, data_dir=captured.data_dir)
    assert typo in str(caught.value) and captured.tickers[0] in str(caught.value)


def test_a_range_without_data_says_which_days_have_some(captured: Capture) -> None:
    with pytest.raises(DataError) as caught:
        ssmd.data.scan("trade", "2026-06-01", "2026-06-30", env=ENV, data_dir=captured.data_dir)
    message = str(caught.value)
    assert "from 2026-06-01 to 2026-06-30" in message
    assert f"2026-07-20 to 2026-07-21, {captured.open_day}" in message


def test_a_damaged_file_is_named_with_its_offset(captured: Capture, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(captured.data_dir, data)
    victim = sorted((data / "normalized").rglob("trade/**/data.capnp.zst"))[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    lazy = ssmd.data.scan("trade", DAY1, DAY2, env=ENV, data_dir=data)
    with pytest.raises(ArchiveError, match=rf"{victim}: corrupt zstd frame at byte \d+"):
        lazy.collect()


def test_a_spool_file_being_sealed_is_read_once(captured: Capture, tmp_path: Path) -> None:
    """While the archiver seals, a spool file and the object holding it both exist for a
    moment; its marker (the object's sha256 before the seal) tells which holds it."""
    data = tmp_path / "data"
    shutil.copytree(captured.data_dir, data)
    sealed = sorted((data / "normalized").rglob("trade/2026/07/20/*/data.capnp.zst"))[0]
    key = sealed.relative_to(data / "normalized").as_posix()
    spool = data / "archiver" / ENV / "spool" / "files" / "normalized" / (key + ".spool")
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(sealed.read_bytes())
    marker = spool.with_name("data.capnp.zst.sealing")
    before = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=captured.data_dir).collect()
    rows = ssmd.records.archive_to_polars(sealed.read_bytes(), "trade").height
    marker.write_bytes(orjson.dumps({"base_sha256": "0" * 64}))  # the object was replaced
    after = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=data).collect()
    assert after.height == before.height
    marker.write_bytes(
        orjson.dumps({"base_sha256": hashlib.sha256(sealed.read_bytes()).hexdigest()})
    )
    pending = ssmd.data.scan("trade", DAY1, env=ENV, data_dir=data).collect()
    assert pending.height == before.height + rows  # not sealed yet: the spool is more data
