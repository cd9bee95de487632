"""The gateway's Prometheus metrics (ssmd.obs.metrics registry), exposed at /metrics."""

from __future__ import annotations

from collections.abc import Callable

from ssmd.obs.metrics import Gauge, Registry

__all__ = ["GatewayMetrics"]

Collect = Callable[[], dict[tuple[str, ...], float]]


def _none() -> dict[tuple[str, ...], float]:
    return {}


class GatewayMetrics:
    """Counters the code increments, plus gauges read from the hub and the feed on demand."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.sent: dict[str, int] = {}  # message type -> count, kept by the client writers
        self.clients_connected = r.gauge(
            "ssmd_gateway_clients_connected", "WebSocket clients connected"
        )
        self.messages_sent = r.counter(
            "ssmd_gateway_messages_sent_total",
            "Messages sent to WebSocket clients, by type",
            ("type",),
            collect=lambda: {(k,): float(v) for k, v in self.sent.items()},
        )
        self.subscriptions = r.gauge(
            "ssmd_gateway_subscriptions_active", "Clients subscribed, by symbol", ("symbol",)
        )
        self.slow_disconnects = r.counter(
            "ssmd_gateway_slow_disconnects_total",
            "Clients disconnected (4408) because they did not keep up, by reason",
            ("reason",),
        )
        self.conflated = r.counter(
            "ssmd_gateway_conflated_total",
            "Book updates replaced by a newer one before a slow client got them",
        )
        self.auth_failures = r.counter(
            "ssmd_gateway_auth_failures_total",
            "Requests and connections refused: missing or invalid key (401/4401), "
            "too many connections for a key (4429)",
            ("reason",),
        )
        self.client_errors = r.counter(
            "ssmd_gateway_client_errors_total",
            "Error replies to client messages, by code",
            ("code",),
        )
        self.stream_messages = r.counter(
            "ssmd_gateway_stream_messages_total",
            "Messages consumed from the stream, by subject type",
            ("type",),
        )
        self.book_events = r.counter(
            "ssmd_gateway_book_events_total",
            "Order-book events while applying records (gap, invalidated, resynced, duplicate, ...)",
            ("kind",),
        )
        self.decode_errors = r.counter(
            "ssmd_gateway_decode_errors_total", "Stream messages that could not be decoded"
        )
        self.consumer_resets = r.counter(
            "ssmd_gateway_consumer_starts_total",
            "Stream consumers created (start-up reads, the live consumer, restarts)",
            ("consumer",),
        )
        self.stream_lag = r.gauge(
            "ssmd_gateway_stream_lag_messages", "Messages pending on the gateway's live consumer"
        )
        self.last_message_age = r.gauge(
            "ssmd_gateway_last_message_age_seconds",
            "Age of the newest record received (connector receive time)",
        )
        self.nats_connected = r.gauge("ssmd_gateway_nats_connected", "1 when connected to NATS")
        self.ready = r.gauge("ssmd_gateway_ready", "1 once the start-up replay caught up")
        self.books = r.gauge("ssmd_gateway_books", "Order books held")
        self.trades_held = r.gauge("ssmd_gateway_trades_held", "Recent trades held")

    def bind(
        self,
        *,
        clients: Collect = _none,
        subscriptions: Collect = _none,
        feed: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        """Wire the gauges to their sources (the hub and the feed)."""
        self.clients_connected.collect = clients
        self.subscriptions.collect = subscriptions
        if feed is not None:
            gauges: dict[str, Gauge] = {
                "lag": self.stream_lag,
                "age": self.last_message_age,
                "nats": self.nats_connected,
                "ready": self.ready,
                "books": self.books,
                "trades": self.trades_held,
            }
            for name, gauge in gauges.items():
                gauge.collect = _one(feed, name)

    def expose(self) -> str:
        return self.registry.expose()


def _one(source: Callable[[], dict[str, float]], name: str) -> Collect:
    def collect() -> dict[tuple[str, ...], float]:
        value = source().get(name)
        return {} if value is None else {(): value}

    return collect
