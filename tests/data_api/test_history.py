"""The gateway's history routes over the captured archive: every row of ssmd.data.scan
through every page and format, the book at a moment, inventory and quality, keys and
bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from polars.testing import assert_frame_equal

import ssmd.data
from _support.datafix import DAY1, DAY2, ENV, SEC, Capture
from ssmd.data.source import Dataset
from ssmd.gateway import Gateway, GatewaySettings
from ssmd.gateway.auth import KeyRing, new_key

pytestmark = pytest.mark.xdist_group("data_api")

KEY, KEY_LINE = new_key("analyst")
D1, D2 = DAY1.isoformat(), DAY2.isoformat()


def _settings(cap: Capture, **changes: Any) -> GatewaySettings:
    dataset = Dataset.open(ENV, data_dir=cap.data_dir)
    base = GatewaySettings.from_environment(cap.env, dataset=lambda: dataset)
    return replace(base, **changes)


@pytest.fixture
def http(captured: Capture) -> Iterator[TestClient]:
    # No lifespan: the history routes read the archive, not the stream.
    yield TestClient(Gateway(_settings(captured)).app)


def _scan(cap: Capture, **kw: Any) -> pl.DataFrame:
    return ssmd.data.scan(
        "trade", DAY1.isoformat(), DAY2.isoformat(), env=ENV, data_dir=cap.data_dir, **kw
    ).collect()


def _pages(http: TestClient, fmt: str, limit: int, **params: Any) -> list[tuple[int, list[str]]]:
    """(rows, trade ids) of every page, following `next` until the end."""
    pages = []
    query: dict[str, Any] = {"from": D1, "to": D2, "limit": limit, "format": fmt} | params
    while True:
        resp = http.get("/v1/history/trade", params=query)
        assert resp.status_code == 200, resp.text
        text = resp.text
        if fmt == "json":
            body = orjson.loads(text)
            ids = [r["trade_id"] for r in body["rows"]]
            assert body["count"] == len(ids) and body["truncated"] == (body["next"] is not None)
            cursor = body["next"]
        elif fmt == "ndjson":
            lines = [orjson.loads(line) for line in text.splitlines()]
            cursor = lines.pop()["next"] if lines and "next" in lines[-1] else None
            ids = [r["trade_id"] for r in lines]
        elif fmt == "arrow":
            ids, cursor = _arrow_page(resp.content)
        elif fmt == "parquet":
            ids, cursor = _parquet_page(resp.content)
        else:
            cursor = None
            if text.splitlines()[-1].startswith("#next="):
                cursor = text.splitlines()[-1].removeprefix("#next=")
            rows = list(csv.DictReader(io.StringIO(text), restkey="_"))
            ids = [r["trade_id"] for r in rows if not r["receive_ts"].startswith("#")]
        assert resp.headers["content-type"].startswith(MEDIA_TYPES[fmt])
        pages.append((len(ids), ids))
        if cursor is None:
            return pages
        query["cursor"] = cursor


def _arrow_page(body: bytes) -> tuple[list[str], str | None]:
    """Trade ids of an Arrow IPC stream, and the cursor of its last (empty) batch."""
    reader = pa.ipc.open_stream(body)
    ids: list[str] = []
    cursor = None
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return ids, cursor
        ids += batch.column("trade_id").to_pylist()
        if meta is not None and b"ssmd.next" in meta:
            assert batch.num_rows == 0
            cursor = meta[b"ssmd.next"].decode()


def _parquet_page(body: bytes) -> tuple[list[str], str | None]:
    """Trade ids of a Parquet file, and the cursor in its footer."""
    file = pq.ParquetFile(io.BytesIO(body))
    meta = file.metadata.metadata
    truncated = meta[b"ssmd.truncated"] == b"true"
    cursor = meta[b"ssmd.next"].decode() if truncated else None
    return file.read().column("trade_id").to_pylist(), cursor


MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}


@pytest.mark.parametrize("fmt", list(MEDIA_TYPES))
def test_pages_give_every_row_of_scan_in_order(
    captured: Capture, http: TestClient, fmt: str
) -> None:
    expected = _scan(captured).get_column("trade_id").to_list()
    day1 = _scan(captured).filter(pl.col("receive_ts").dt.date() == DAY1).height
    limit = day1 // 2 + 7  # pages cross midnight, not on a day's edge
    pages = _pages(http, fmt, limit)
    assert len(pages) >= 3
    assert all(n == limit for n, _ in pages[:-1]) and 0 < pages[-1][0] <= limit
    assert [i for _, ids in pages for i in ids] == expected


def test_rows_carry_the_columns_and_values_of_scan(captured: Capture, http: TestClient) -> None:
    ticker = captured.tickers[1]
    frame = _scan(captured, tickers=[ticker])
    resp = http.get(
        "/v1/history/trade",
        params={"from": D1, "to": D2, "tickers": ticker, "format": "ndjson"},
    )
    rows = [orjson.loads(line) for line in resp.text.splitlines()]
    assert list(rows[0]) == frame.columns and "source" in rows[0]
    assert [r["price_e6"] for r in rows] == frame.get_column("price_e6").to_list()
    assert {r["source"] for r in rows} == {"live"}
    first = frame.get_column("receive_ts")[0]
    assert rows[0]["receive_ts"].startswith(first.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_binary_formats_keep_the_columns_and_types_of_scan(
    captured: Capture, http: TestClient, fmt: str
) -> None:
    ticker = captured.tickers[1]
    frame = _scan(captured, tickers=[ticker])
    params = {"from": D1, "to": D2, "tickers": ticker, "format": fmt, "limit": frame.height}
    body = http.get("/v1/history/trade", params=params).content
    got = pl.read_ipc_stream(body) if fmt == "arrow" else pl.read_parquet(io.BytesIO(body))
    assert_frame_equal(got, frame)


def test_a_time_window_and_the_book_delta_table(captured: Capture, http: TestClient) -> None:
    start = captured.gap_ns - 20 * SEC
    end = captured.gap_ns + 10 * SEC
    want = ssmd.data.scan("book_delta", start, end, env=ENV, data_dir=captured.data_dir).collect()
    for kind in ("book_delta", "orderbook"):
        resp = http.get(
            f"/v1/history/{kind}", params={"from": str(start), "to": str(end), "limit": 100_000}
        )
        body = orjson.loads(resp.content)
        assert body["kind"] == "book_delta" and body["count"] == want.height > 0
        assert [r["seq"] for r in body["rows"]] == want.get_column("seq").to_list()


def test_the_default_and_the_largest_limit(captured: Capture) -> None:
    http = TestClient(Gateway(_settings(captured, history_limit=5, history_max_limit=50)).app)
    body = http.get("/v1/history/trade", params={"from": D1}).json()
    assert body["count"] == 5 and body["truncated"] and body["next"]
    refused = http.get("/v1/history/trade", params={"from": D1, "limit": 51})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "limit=51" in message and "50 rows" in message and "next" in message


def test_bad_input_is_named(captured: Capture, http: TestClient) -> None:
    def error(path: str, **params: Any) -> tuple[int, str]:
        resp = http.get(path, params=params)
        body = resp.json()
        assert body["type"] == "error"
        return resp.status_code, body["message"]

    status, message = error("/v1/history/trades", **{"from": D1})
    assert status == 404 and "closest: trade" in message and "book_delta" in message
    wrong = captured.tickers[0][:-1] + "X"
    status, message = error("/v1/history/trade", **{"from": D1, "tickers": wrong})
    assert status == 404 and captured.tickers[0] in message
    status, message = error("/v1/history/trade", **{"from": "yesterday"})
    assert status == 400 and "from='yesterday'" in message and "YYYY-MM-DD" in message
    status, message = error("/v1/history/trade", **{"from": D1, "to": "2026-13-01"})
    assert status == 400 and "to=" in message
    status, message = error("/v1/history/trade")
    assert status == 400 and "from is required" in message
    status, message = error("/v1/history/trade", **{"from": "2026-07-01"})
    assert status == 404 and "2026-07-20 to 2026-07-21" in message
    status, message = error("/v1/history/trade", **{"from": D1, "format": "xml"})
    assert status == 400 and "json, ndjson, csv, arrow, parquet" in message
    status, message = error("/v1/history/trade", **{"from": D1, "cursor": "nonsense"})
    assert status == 400 and "cursor" in message
    first = http.get("/v1/history/trade", params={"from": D1, "limit": 3}).json()
    status, message = error("/v1/history/trade", **{"from": D2, "cursor": first["next"]})
    assert status == 400 and "another query" in message
    status, message = error("/v1/quality", date="2026-07-01")
    assert status == 404 and "2026-07-20 to 2026-07-21" in message
    status, message = error("/v1/inventory", **{"from": "July"})
    assert status == 400 and "from='July'" in message


def test_the_book_at_a_moment_with_its_validity(captured: Capture, http: TestClient) -> None:
    dataset = Dataset.open(ENV, data_dir=captured.data_dir)
    ticker = captured.gap_ticker
    for at in (captured.gap_ns - 5 * SEC, captured.gap_ns + 5 * SEC):
        resp = http.get("/v1/history/book", params={"ticker": ticker, "at": str(at), "depth": 3})
        assert resp.status_code == 200
        want = ssmd.data.book_at(ticker, at, 3, dataset=dataset).to_dict()
        assert resp.json() == want
    after = resp.json()
    assert not after["valid"] and after["reason"].startswith("seq_gap from")
    day = http.get("/v1/history/book", params={"ticker": ticker, "at": DAY1.isoformat()})
    assert day.status_code == 400 and "is a day" in day.json()["message"]
    unknown = http.get(
        "/v1/history/book", params={"ticker": ticker + "Z", "at": str(after["at_ns"])}
    )
    assert unknown.status_code == 404 and ticker in unknown.json()["message"]


def test_inventory_and_quality_are_those_of_the_archive(
    captured: Capture, http: TestClient
) -> None:
    dataset = Dataset.open(ENV, data_dir=captured.data_dir)
    body = http.get("/v1/inventory", params={"from": D1, "to": D2}).json()
    assert body["env"] == ENV and body["feed"] == dataset.feed
    assert body["inventory"] == dataset.archive.inventory(dataset.feed, DAY1, DAY2)
    quality = http.get("/v1/quality", params={"date": D2}).json()  # the gap's day
    report = dataset.archive.quality(dataset.feed, DAY2)
    assert {k: quality[k] for k in report} == report
    assert quality["gap_list"] == dataset.archive.gaps(dataset.feed, DAY2)
    assert quality["gaps"] == len(quality["gap_list"]) >= 1


def test_routes_need_a_key_when_keys_are_configured(captured: Capture) -> None:
    keys = KeyRing.parse(KEY_LINE)
    http = TestClient(Gateway(_settings(captured, keys=keys)).app)
    paths = [
        f"/v1/history/trade?from={DAY1}&limit=1",
        f"/v1/history/book?ticker={captured.tickers[0]}&at={DAY1}T23:59:00Z",
        "/v1/inventory",
        f"/v1/quality?date={DAY1}",
    ]
    for path in paths:
        missing = http.get(path)
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        assert "API key is required" in missing.json()["message"]
        wrong = http.get(path, headers={"X-API-Key": "ssmd_not-a-key"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["message"]
        assert KEY not in wrong.text
        assert http.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
        assert http.get(path + ("&" if "?" in path else "?") + f"api_key={KEY}").status_code == 200
