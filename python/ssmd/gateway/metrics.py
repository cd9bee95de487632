"""The gateway's Prometheus metrics (its own prometheus_client registry), exposed at /metrics."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from ssmd.obs.metrics import CollectorRegistry, Read, Sampled, expose

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Counters the code increments, plus values read from the hub and the feed when
    scraped (the per-message send counts stay plain integers in `sent`)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sent: dict[str, int] = {}  # message type -> count, kept by the client writers
        self.clients_connected = Sampled.register(
            r, "gauge", "ssmd_gateway_clients_connected", "WebSocket clients connected"
        )
        Sampled.register(
            r,
            "counter",
            "ssmd_gateway_messages_sent_total",
            "Messages sent to WebSocket clients, by type",
            ("type",),
            lambda: {(k,): float(v) for k, v in self.sent.items()},
        )
        self.subscriptions = Sampled.register(
            r,
            "gauge",
            "ssmd_gateway_subscriptions_active",
            "Clients subscribed, by symbol",
            ("symbol",),
        )
        self.slow_disconnects = Counter(
            "ssmd_gateway_slow_disconnects_total",
            "Clients disconnected (4408) because they did not keep up, by reason",
            ["reason"],
            registry=r,
        )
        self.shed = Counter(
            "ssmd_gateway_shed_total",
            "Clients closed (1013) because the gateway fell behind the stream",
            registry=r,
        )
        self.conflated = 0  # bumped by the hub per replaced update: a plain int, read when scraped
        Sampled.register(
            r,
            "counter",
            "ssmd_gateway_conflated_total",
            "Book updates replaced by a newer one before a slow client got them",
            read=lambda: {(): float(self.conflated)},
        )
        self.auth_failures = Counter(
            "ssmd_gateway_auth_failures_total",
            "Requests and connections refused: missing or invalid key (401/4401), "
            "too many connections for a key (4429)",
            ["reason"],
            registry=r,
        )
        self.client_errors = Counter(
            "ssmd_gateway_client_errors_total",
            "Error replies to client messages, by code",
            ["code"],
            registry=r,
        )
        self.transform_failures = Counter(
            "ssmd_gateway_transform_failures_total",
            "Lua transforms that failed or broke a limit (the client gets the default "
            "format from then on), by transform and reason",
            ["transform", "reason"],
            registry=r,
        )
        self.stream_messages = Counter(
            "ssmd_gateway_stream_messages_total",
            "Messages consumed from the stream, by subject type",
            ["type"],
            registry=r,
        )
        self.book_events = Counter(
            "ssmd_gateway_book_events_total",
            "Order-book events while applying records (gap, invalidated, resynced, duplicate, ...)",
            ["kind"],
            registry=r,
        )
        self.decode_errors = Counter(
            "ssmd_gateway_decode_errors_total",
            "Stream messages that could not be decoded",
            registry=r,
        )
        self.consumer_resets = Counter(
            "ssmd_gateway_consumer_starts_total",
            "Stream consumers created (start-up reads, the live consumer, restarts)",
            ["consumer"],
            registry=r,
        )
        # feed.gauges() key -> its gauge
        self._feed_gauges = {
            key: Sampled.register(r, "gauge", name, text)
            for key, name, text in (
                (
                    "lag",
                    "ssmd_gateway_stream_lag_messages",
                    "Messages pending on the gateway's live consumer",
                ),
                (
                    "age",
                    "ssmd_gateway_last_message_age_seconds",
                    "Age of the newest record received (connector receive time)",
                ),
                ("nats", "ssmd_gateway_nats_connected", "1 when connected to NATS"),
                ("ready", "ssmd_gateway_ready", "1 once the start-up replay caught up"),
                ("books", "ssmd_gateway_books", "Order books held"),
                ("trades", "ssmd_gateway_trades_held", "Recent trades held"),
            )
        }

    def bind(
        self,
        *,
        clients: Read | None = None,
        subscriptions: Read | None = None,
        feed: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        """Wire the gauges to their sources (the hub and the feed)."""
        if clients is not None:
            self.clients_connected.read = clients
        if subscriptions is not None:
            self.subscriptions.read = subscriptions
        if feed is not None:
            for key, gauge in self._feed_gauges.items():
                gauge.read = _one(feed, key)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when it has none yet), for tests and reports."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def expose(self) -> str:
        return expose(self.registry)


def _one(source: Callable[[], dict[str, float]], key: str) -> Read:
    def read() -> dict[tuple[str, ...], float]:
        value = source().get(key)
        return {} if value is None else {(): value}

    return read
