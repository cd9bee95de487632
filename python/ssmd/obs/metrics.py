"""Prometheus metrics on prometheus_client: one CollectorRegistry per component.

Each component builds its own registry (never the library's global one), so tests and
several components in one process do not collide. Counts the code bumps now and then are
prometheus_client Counters and Gauges registered there; counts kept on a hot path stay
plain integers and are read when scraped, through a `Sampled` collector (nothing is
incremented per message for metrics).

    registry = CollectorRegistry()
    Sampled.register(registry, "counter", "ssmd_x_total", "Help", ("feed",), read)
    expose(registry)  # text exposition, what /metrics serves with CONTENT_TYPE
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "CollectorRegistry", "Read", "Sampled", "exported_names", "expose"]

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4  # what every Prometheus 2.x and later scrapes

# label values -> value, read when scraped
Read = Callable[[], Mapping[tuple[str, ...], float]]


def _nothing() -> Mapping[tuple[str, ...], float]:
    return {}


class Sampled(Collector):
    """A counter or gauge whose values are read from elsewhere when scraped."""

    def __init__(
        self,
        kind: Literal["counter", "gauge"],
        name: str,
        documentation: str,
        labels: tuple[str, ...] = (),
        read: Read = _nothing,
    ) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labels = list(labels)
        self.read = read  # may be rebound later (a source wired after the registry is built)

    @classmethod
    def register(
        cls,
        registry: CollectorRegistry,
        kind: Literal["counter", "gauge"],
        name: str,
        documentation: str,
        labels: tuple[str, ...] = (),
        read: Read = _nothing,
    ) -> Sampled:
        collector = cls(kind, name, documentation, labels, read)
        registry.register(collector)
        return collector

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        make = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return make(self.name, self.documentation, labels=self.labels)

    def describe(self) -> Iterator[Metric]:
        # Lets the registry check names at register() without reading the values.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for key, value in self.read().items():
            family.add_metric(list(key), float(value))
        yield family


def expose(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(registry).decode()


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can expose (counters with their _total), whether or
    not it has a sample yet: what an alert rule or a dashboard may refer to."""
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        elif family.type == "summary":
            names.update(f"{family.name}{s}" for s in ("", "_sum", "_count"))
        else:
            names.add(family.name)
        names.update(s.name for s in family.samples)
    return names
