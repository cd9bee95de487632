"""The connector's Prometheus metrics (its own prometheus_client registry), exposed at /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter

from ssmd.obs.metrics import CollectorRegistry, Sampled
from ssmd.obs.stream import StreamGauges

if TYPE_CHECKING:
    from ssmd.connector.runner import Connector

__all__ = ["ConnectorMetrics"]


class ConnectorMetrics:
    """Counters the connector increments, plus values read from it when scraped (so the
    hot path keeps plain attributes and counts)."""

    def __init__(self, c: Connector) -> None:
        r = self.registry = CollectorRegistry()
        feed = c.settings.feed
        self.received = Counter(
            "ssmd_connector_messages_received_total",
            "Frames received, by type",
            ["feed", "type"],
            registry=r,
        )
        self.errors = Counter(
            "ssmd_connector_errors_total", "Errors, by type", ["feed", "error_type"], registry=r
        )
        self.events = Counter(
            "ssmd_connector_events_total", "Connector events, by kind", ["feed", "kind"], registry=r
        )
        self.stream = StreamGauges.register(r, c.settings.nats.stream)
        Sampled.register(
            r,
            "counter",
            "ssmd_connector_messages_published_total",
            "Messages acked by JetStream",
            ("feed",),
            lambda: {(feed,): float(c.publisher.acked if c.publisher else 0)},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_lag_seconds",
            "Exchange timestamp to receipt of the newest record that has one (sampled once "
            "per batch; a gauge)",
            ("feed",),
            lambda: {(feed,): c.exchange_lag_ns / 1e9} if c.exchange_lag_ns else {},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_publish_lag_seconds",
            "Receipt to JetStream's PubAck of the last raw frame",
            ("feed",),
            lambda: {(feed,): c.publish_lag_ns / 1e9},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_last_frame_timestamp_seconds",
            "Wall-clock time the last frame was received (0: none yet)",
            ("feed",),
            lambda: {(feed,): c.last_frame_ns / 1e9},
        )
        Sampled.register(
            r,
            "counter",
            "ssmd_connector_dropped_total",
            "Frames dropped with the spool full",
            ("feed",),
            lambda: {(feed,): float(c.queue.dropped)},
        )

        def shard_states() -> dict[tuple[str, ...], float]:
            out: dict[tuple[str, ...], float] = {}
            for sh in c.shards.shards.values():
                key = (feed, sh.state)
                out[key] = out.get(key, 0) + 1
            return out

        Sampled.register(
            r, "gauge", "ssmd_connector_shards", "Shards, by state", ("feed", "state"), shard_states
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_markets_subscribed",
            "Markets acknowledged by the exchange",
            ("feed",),
            lambda: {(feed,): float(sum(len(sh.subscribed) for sh in c.shards.shards.values()))},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_markets_desired",
            "Markets the selection asks for",
            ("feed",),
            lambda: {(feed,): float(len(c.tracking.desired if c.tracking else c.shards.owner))},
        )
        group = c.settings.shard_group
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_shard_group_info",
            "1, labelled with this process's shard group (I/N) when it is one of several",
            ("feed", "group"),
            lambda: {(feed, group.label): 1.0} if group is not None else {},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_gaps_open",
            "Sequence gaps whose books await a resync (snapshots) right now",
            ("feed",),
            lambda: {(feed,): float(len(c.repair.resyncs))},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_queue_bytes",
            "Capture queue usage",
            ("feed", "where"),
            lambda: {
                (feed, "memory"): float(c.queue.memory_used),
                (feed, "spool"): float(c.queue.spool_used),
            },
        )
        Sampled.register(
            r,
            "counter",
            "ssmd_connector_publish_reordered_total",
            "Messages JetStream stored ahead of a message published before them (a refusal "
            "in the middle of a batch, as when a stream leader is lost)",
            ("feed",),
            lambda: {(feed,): float(c.publisher.reordered if c.publisher else 0)},
        )
        Sampled.register(
            r,
            "gauge",
            "ssmd_connector_publish_inflight",
            "Unacked JetStream publishes",
            ("feed",),
            lambda: {(feed,): float(c.publisher.inflight if c.publisher else 0)},
        )
