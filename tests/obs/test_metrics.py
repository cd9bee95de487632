"""ssmd.obs.metrics and the series the components add for alerts: values read when
scraped, per-bucket archive writes, exchange-to-receipt lag, the stream's limits."""

from __future__ import annotations

from pathlib import Path

from nats.js.api import StreamInfo
from obsfix import connector, registries
from prometheus_client import Counter

from _support import kalshi_fixture
from ssmd import core
from ssmd.archiver import Archiver, ArchiverSettings
from ssmd.archiver.metrics import build_registry
from ssmd.archiver.runner import bucket_of
from ssmd.connector.capture_queue import Item
from ssmd.obs.metrics import CollectorRegistry, Sampled, exported_names, expose
from ssmd.obs.stream import StreamGauges
from ssmd.store.local import LocalObjectStore

# A delivery made by hand: (subject, stream seq, stored ns, headers, payload).
Hand = tuple[str, int, int, dict[str, str] | None, bytes]

T0_NS = 1_784_557_805 * 1_000_000_000  # 2026-07-20 14:30:05 UTC
HOUR_NS = 3_600 * 1_000_000_000


def test_sampled_values_are_read_at_scrape_time() -> None:
    r = CollectorRegistry()
    counts = {"trade": 3}
    Sampled.register(
        r,
        "counter",
        "ssmd_test_sent_total",
        "sent",
        ("type",),
        lambda: {(k,): float(v) for k, v in counts.items()},
    )
    gauge = Sampled.register(r, "gauge", "ssmd_test_open", "open")
    assert r.get_sample_value("ssmd_test_sent_total", {"type": "trade"}) == 3
    counts["trade"] = 5  # a hot path bumps its plain int; nothing else happens
    gauge.read = lambda: {(): 2.0}  # wired to its source later
    text = expose(r)
    assert 'ssmd_test_sent_total{type="trade"} 5.0' in text
    assert "# TYPE ssmd_test_sent_total counter" in text
    assert "ssmd_test_open 2.0" in text


def test_exported_names_include_series_without_samples() -> None:
    r = CollectorRegistry()
    Sampled.register(r, "counter", "ssmd_test_a_total", "a", ("x",))
    Counter("ssmd_test_b_total", "b", ["y"], registry=r)
    Sampled.register(r, "gauge", "ssmd_test_c", "c")
    assert {"ssmd_test_a_total", "ssmd_test_b_total", "ssmd_test_c"} <= exported_names(r)


def test_components_registries_do_not_share_state(tmp_path: Path) -> None:
    """Two sets of components in one process: each its own registry, no name clash."""
    first, second = registries(tmp_path / "a"), registries(tmp_path / "b")
    for name in first:
        assert first[name] is not second[name]


def test_archiver_counts_files_and_bytes_per_bucket_and_the_last_seal(tmp_path: Path) -> None:
    now = T0_NS + 2 * HOUR_NS  # the hour of T0 is over: its file is due
    raw = LocalObjectStore(tmp_path / "raw")
    arc = Archiver(
        ArchiverSettings(
            env="kalshi-sim",
            feed="kalshi",
            nats_url="nats://127.0.0.1:9",
            stream="SSMD_KALSHI_SIM",
            raw_store=raw,
            normalized_store=LocalObjectStore(tmp_path / "normalized"),
            spool_dir=tmp_path / "spool",
            seal_grace=0.0,
            clock=lambda: now,
        )
    )
    try:
        frames: list[Hand] = [
            (
                "kalshi-sim.kalshi.raw.trade",
                seq,
                T0_NS,
                {"Ssmd-Receive-Ns": str(T0_NS + seq), "Ssmd-Conn-Id": "7"},
                b'{"type":"trade","sid":1,"seq":%d,"msg":{}}' % seq,
            )
            for seq in range(1, 4)
        ]
        arc.process(core.Deliveries(frames))
        r = build_registry(arc)
        bucket = {"bucket": bucket_of(raw)}
        assert r.get_sample_value("ssmd_archiver_files_written_total", bucket) is None
        assert (
            r.get_sample_value("ssmd_archiver_last_seal_timestamp_seconds", {"feed": "kalshi"})
            is None
        )
        assert arc.seal_due() == 1
        sealed = next((tmp_path / "raw").rglob("trade-14.jsonl.zst"))
        assert r.get_sample_value("ssmd_archiver_files_written_total", bucket) == 1
        assert (
            r.get_sample_value("ssmd_archiver_bytes_written_total", bucket) == sealed.stat().st_size
        )
        assert r.get_sample_value("ssmd_archiver_last_seal_timestamp_seconds", {"feed": "kalshi"})
        quality = r.get_sample_value(
            "ssmd_archiver_quality_score", {"feed": "kalshi", "data_type": "raw"}
        )
        assert quality is not None and 0.0 <= quality <= 1.0
        free = r.get_sample_value("ssmd_archiver_disk_free_bytes", {"feed": "kalshi"})
        size = r.get_sample_value("ssmd_archiver_disk_size_bytes", {"feed": "kalshi"})
        assert free is not None and size is not None and 0 < free <= size
    finally:
        arc.spool.close()


def test_connector_lag_is_exchange_time_to_receipt(tmp_path: Path) -> None:
    conn = connector(tmp_path)
    lag = {"feed": "kalshi"}
    assert conn.metrics.registry.get_sample_value("ssmd_connector_lag_seconds", lag) is None
    frame = kalshi_fixture("ticker_c_never_traded")  # stamped ts_ms 1784557900000
    receive_ns = 1_784_557_900_000 * 1_000_000 + 250_000_000
    conn.sample_lag(conn.pipeline.process([Item(1, 1, receive_ns, frame)]).messages)
    assert conn.metrics.registry.get_sample_value("ssmd_connector_lag_seconds", lag) == 0.25
    last = conn.metrics.registry.get_sample_value(
        "ssmd_connector_last_frame_timestamp_seconds", lag
    )
    assert last == receive_ns / 1e9


def test_connector_counts_drops_where_the_queue_counts_them(tmp_path: Path) -> None:
    conn = connector(tmp_path, memory_bytes=1_000, spool_bytes=1_000)
    frame = b"x" * 400
    for n in range(1, 20):
        conn.queue.put(Item(1, n, n, frame))
    assert conn.queue.dropped > 0
    dropped = conn.metrics.registry.get_sample_value(
        "ssmd_connector_dropped_total", {"feed": "kalshi"}
    )
    assert dropped == conn.queue.dropped
    conn.queue.close()


def test_stream_gauges_read_size_and_limits() -> None:
    r = CollectorRegistry()
    gauges = StreamGauges.register(r, "SSMD_X")
    assert r.get_sample_value("ssmd_stream_bytes", {"stream": "SSMD_X"}) is None  # not read yet
    info = StreamInfo.from_response(
        {
            "config": {"name": "SSMD_X", "max_bytes": 1000, "max_msgs": -1, "max_age": 3600e9},
            "state": {
                "messages": 10,
                "bytes": 950,
                "first_seq": 1,
                "last_seq": 10,
                "consumer_count": 1,
            },
        }
    )
    gauges.update(info)
    labels = {"stream": "SSMD_X"}
    assert r.get_sample_value("ssmd_stream_bytes", labels) == 950
    assert r.get_sample_value("ssmd_stream_max_bytes", labels) == 1000
    assert r.get_sample_value("ssmd_stream_messages", labels) == 10
    assert r.get_sample_value("ssmd_stream_max_messages", labels) == -1
