"""The JetStream stream's size against its limits, as gauges (`ssmd_stream_*{stream}`).

The connector owns the stream, so it polls the stream's info (every `interval` seconds,
one request) and exposes what it read; a limit JetStream does not enforce is -1, as
JetStream reports it. What `StreamNearLimits` alerts on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ssmd.obs.metrics import CollectorRegistry

__all__ = ["StreamGauges"]

log = logging.getLogger(__name__)

# series name -> help
_GAUGES = {
    "ssmd_stream_bytes": "Bytes the stream holds",
    "ssmd_stream_messages": "Messages the stream holds",
    "ssmd_stream_max_bytes": "The stream's byte limit (-1: none)",
    "ssmd_stream_max_messages": "The stream's message limit (-1: none)",
    "ssmd_stream_max_age_seconds": "The stream's retention (0: none)",
}


class StreamGauges(Collector):
    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.values: dict[str, float] = {}  # empty until the first successful poll

    @classmethod
    def register(cls, registry: CollectorRegistry, stream: str) -> StreamGauges:
        gauges = cls(stream)
        registry.register(gauges)
        return gauges

    def update(self, info: Any) -> None:
        """Read a nats-py StreamInfo."""
        state, config = info.state, info.config
        self.values = {
            "ssmd_stream_bytes": float(state.bytes or 0),
            "ssmd_stream_messages": float(state.messages or 0),
            "ssmd_stream_max_bytes": float(-1 if config.max_bytes is None else config.max_bytes),
            "ssmd_stream_max_messages": float(-1 if config.max_msgs is None else config.max_msgs),
            "ssmd_stream_max_age_seconds": float(config.max_age or 0),
        }

    async def poll(self, js: Any, interval: float) -> None:
        """Read the stream's info now and every `interval` seconds, until cancelled; a
        failed read keeps the last figures (the connector's NATS state says why)."""
        while True:
            try:
                self.update(await js.stream_info(self.stream))
            except Exception as exc:
                log.debug("stream info of %s failed: %s", self.stream, exc)
            await asyncio.sleep(interval)

    def describe(self) -> Iterator[Metric]:
        for name, text in _GAUGES.items():
            yield GaugeMetricFamily(name, text, labels=["stream"])

    def collect(self) -> Iterator[Metric]:
        for name, text in _GAUGES.items():
            family = GaugeMetricFamily(name, text, labels=["stream"])
            if name in self.values:
                family.add_metric([self.stream], self.values[name])
            yield family
