"""The figures `ssmd up` shows, from real /metrics expositions; the archiver's metrics; the report."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import Counter, Gauge

from ssmd import core
from ssmd.archiver import Archiver, ArchiverSettings
from ssmd.archiver.metrics import build_registry, health
from ssmd.obs.metrics import CollectorRegistry, expose
from ssmd.store.local import LocalObjectStore
from ssmd.up.display import line_level
from ssmd.up.report import archive_report
from ssmd.up.status import Sampler, figures_from, human_bytes, parse_metrics

# A delivery made by hand: (subject, stream seq, stored ns, headers, payload).
Hand = tuple[str, int, int, dict[str, str] | None, bytes]

T0_NS = 1_784_557_805 * 1_000_000_000  # 2026-07-20 14:30:05 UTC
HOUR_NS = 3_600 * 1_000_000_000


def _connector_exposition(received: int, published: int, gaps: int) -> str:
    """What the connector's registry exposes (the same metric names and labels)."""
    r = CollectorRegistry()
    rec = Counter("ssmd_connector_messages_received_total", "x", ["feed", "type"], registry=r)
    rec.labels("kalshi", "trade").inc(received - 10)
    rec.labels("kalshi", "orderbook_delta").inc(10)
    pub = Counter("ssmd_connector_messages_published_total", "x", ["feed"], registry=r)
    pub.labels("kalshi").inc(published)
    ev = Counter("ssmd_connector_events_total", "x", ["feed", "kind"], registry=r)
    ev.labels("kalshi", "gap").inc(gaps)
    ev.labels("kalshi", "connected").inc(3)
    Gauge("ssmd_connector_markets_subscribed", "x", ["feed"], registry=r).labels("kalshi").set(19)
    return expose(r)


def test_parse_metrics_reads_labels_values_and_escapes() -> None:
    text = (
        "# HELP m a metric\n# TYPE m counter\n"
        'm{feed="kalshi",why="say \\"hi\\"\\nbye"} 3\n'
        'm{feed="other"} 1.5e3\n'
        "plain 7\n"
        "broken{ nonsense\n"
    )
    s = parse_metrics(text)
    assert s.total("m") == 1503
    assert s.total("m", feed="kalshi") == 3
    assert s.data["m"][0][0]["why"] == 'say "hi"\nbye'
    assert s.total("plain") == 7 and not s.has("broken")


def test_figures_and_rates_from_two_samples() -> None:
    first = figures_from(
        parse_metrics(_connector_exposition(100, 180, 0)), None, None, None, None, now=10.0
    )
    health_doc = {"shards": [{"shard": 0, "state": "streaming", "markets": 0, "subscribed": 0}]}
    arch = CollectorRegistry()
    written = Counter("ssmd_archiver_records_written_total", "x", ["feed"], registry=arch)
    written.labels("kalshi").inc(400)
    Gauge("ssmd_archiver_spool_records", "x", ["feed"], registry=arch).labels("kalshi").set(400)
    gw = CollectorRegistry()
    Gauge("ssmd_gateway_clients_connected", "x", registry=gw).set(2)
    second = figures_from(
        parse_metrics(_connector_exposition(300, 580, 1)),
        health_doc,
        parse_metrics(expose(arch)),
        parse_metrics(expose(gw)),
        first,
        now=12.0,
    )
    assert second.frames_received == 300 and second.received_per_s == 100.0
    assert second.messages_published == 580 and second.published_per_s == 200.0
    assert second.markets_subscribed == 19 and second.gaps == 1
    assert second.archived == 400 and second.spool_records == 400
    assert second.gateway_clients == 2
    assert second.shards == health_doc["shards"]
    # A child that is down for a sample keeps its last figures; a restarted one (counters
    # back at 0) gives a rate of 0, never negative.
    third = figures_from(None, None, None, None, second, now=13.0)
    assert third.frames_received == 300 and third.received_per_s == 0.0
    fourth = figures_from(
        parse_metrics(_connector_exposition(50, 60, 0)), None, None, None, third, now=14.0
    )
    assert fourth.received_per_s == 0.0
    assert fourth.as_dict()["frames_received"] == 50
    orjson.dumps(fourth.as_dict())  # what the JSON status line carries


def _archiver(tmp: Path, now_ns: int) -> Archiver:
    return Archiver(
        ArchiverSettings(
            env="kalshi-sim",
            feed="kalshi",
            nats_url="nats://127.0.0.1:1",
            stream="SSMD_KALSHI_SIM",
            raw_store=LocalObjectStore(tmp / "raw"),
            normalized_store=LocalObjectStore(tmp / "normalized"),
            spool_dir=tmp / "spool",
            seal_grace=0.0,
            clock=lambda: now_ns,
        )
    )


def test_archiver_metrics_count_what_was_spooled_and_sealed(tmp_path: Path) -> None:
    arc = _archiver(tmp_path, T0_NS + 2 * HOUR_NS)  # the hour of T0 is over
    try:
        frames: list[Hand] = [
            (
                "kalshi-sim.kalshi.raw.trade",
                seq,
                T0_NS,
                {"Ssmd-Receive-Ns": str(T0_NS + seq), "Ssmd-Conn-Id": "7"},
                b'{"type":"trade","sid":1,"seq":%d,"msg":{}}' % seq,
            )
            for seq in range(1, 6)
        ]
        arc.process(core.Deliveries(frames))
        arc.process(core.Deliveries(frames[3:]))  # a redelivery of 4 and 5
        samples = parse_metrics(expose(build_registry(arc)))
        assert samples.total("ssmd_archiver_messages_received_total") == 7
        assert samples.total("ssmd_archiver_records_written_total") == 5
        assert samples.total("ssmd_archiver_duplicates_total") == 2
        assert samples.total("ssmd_archiver_spool_records", feed="kalshi") == 5
        assert samples.total("ssmd_archiver_last_sequence") == 5
        assert samples.total("ssmd_archiver_files_sealed_total") == 0
        assert arc.seal_due() == 1
        samples = parse_metrics(expose(build_registry(arc)))
        assert samples.total("ssmd_archiver_files_sealed_total") == 1
        sealed = next((tmp_path / "raw").rglob("trade-14.jsonl.zst"))
        assert samples.total("ssmd_archiver_sealed_bytes_total") == sealed.stat().st_size
        assert samples.total("ssmd_archiver_spool_files") == 0
        ok, body = health(arc)
        assert not ok and body["nats"] == "disconnected"  # never connected here
        assert body["stats"]["written"] == 5  # type: ignore[index]
    finally:
        arc.spool.close()


class _Inventory:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def inventory(self, feed: object, start: object, end: object) -> list[dict[str, Any]]:
        return self.rows


def _row(
    data_type: str, records: int, files: int, nbytes: int, pending: int, feed: str = "kalshi"
) -> dict[str, Any]:
    return {
        "date": "2026-07-20",
        "feed": feed,
        "data_type": data_type,
        "records": records,
        "files": files,
        "bytes": nbytes,
        "pending_records": pending,
    }


def test_report_says_what_is_sealed_and_what_is_spooled() -> None:
    before = [_row("raw", 0, 0, 0, 100)]
    after = [_row("raw", 0, 0, 0, 250), _row("trade", 10, 1, 900, 40)]
    report = archive_report(_Inventory(after), date(2026, 7, 20), date(2026, 7, 20), before)
    assert [r["data_type"] for r in report.rows] == ["raw", "trade"]
    assert report.added == 200
    assert report.sealed_records == 10 and report.spooled_records == 290
    text = report.summary()
    assert text.startswith("300 records archived (+200 this run): 10 in 1 sealed files")
    assert "290 spooled until their hour (raw) or UTC day (normalized) closes" in text
    assert report.as_dict()["by_data_type"][1]["bytes"] == 900
    assert report.feeds == ["kalshi"]


def test_report_of_several_venues_has_a_row_per_feed_and_type() -> None:
    rows = [
        _row("trade", 10, 1, 900, 0, feed="kraken"),
        _row("raw", 0, 0, 0, 7, feed="kraken"),
        _row("raw", 0, 0, 0, 5),
        _row("trade", 1, 1, 100, 2),
    ]
    report = archive_report(_Inventory(rows), date(2026, 7, 20), date(2026, 7, 20))
    assert [(r["feed"], r["data_type"]) for r in report.rows] == [
        ("kalshi", "raw"),
        ("kalshi", "trade"),
        ("kraken", "raw"),
        ("kraken", "trade"),
    ]
    assert report.feeds == ["kalshi", "kraken"]
    assert (report.sealed_records, report.spooled_records) == (11, 14)


def test_child_line_levels_and_byte_sizes() -> None:
    assert line_level('{"level":"warning","msg":"x"}')[0] == "warning"
    assert line_level("[123] 2026/07/20 14:30:05.000 [WRN] slow consumer")[0] == "warning"
    assert line_level("[123] 2026/07/20 14:30:05.000 [INF] Server is ready")[0] == "info"
    assert line_level("Traceback (most recent call last):")[0] == "warning"
    assert human_bytes(999) == "999 B" and human_bytes(1_500_000) == "1.5 MB"


async def test_a_run_of_several_venues_is_sampled_as_one() -> None:
    """The state file's endpoints, a venue's named after it: the figures are the sums over
    the feeds, a venue's shards named after it, and other children are not polled."""
    metrics = {  # by port: the environment's own connector, then Kraken's
        1: _connector_exposition(received=100, published=150, gaps=1),
        2: _connector_exposition(received=40, published=90, gaps=2),
    }
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        port = request.url.port or 0
        if request.url.path == "/health":
            shard = {"shard": 0, "markets": port, "state": "streaming"}
            return httpx.Response(200, content=orjson.dumps({"shards": [shard]}))
        return httpx.Response(200, text=metrics[port])

    endpoints = {
        "connector": "http://connector:1",
        "connector-kraken": "http://connector:2",
        "secmaster-sync-kraken": "http://elsewhere:3",
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sampler = Sampler.from_endpoints(http, endpoints, "http://127.0.0.1:8080/")
        assert sampler.connectors == {"": "http://connector:1", "kraken": "http://connector:2"}
        assert sampler.archivers == {} and sampler.gateways == {}
        f = await sampler.sample()
    assert (f.frames_received, f.messages_published, f.gaps) == (140, 240, 3)
    assert f.markets_subscribed == 38  # 19 each
    assert [(s["shard"], s["markets"]) for s in f.shards] == [(0, 1), ("kraken#0", 2)]
    assert not any("elsewhere" in url for url in asked)
