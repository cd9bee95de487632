"""A tiny Prometheus registry: counters and gauges with labels, text exposition format 0.0.4."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Counter", "Gauge", "Registry"]


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc, strict=True)) + "}"


Collect = Callable[[], dict[tuple[str, ...], float]]


class _Metric:
    """Values by label tuple; with `collect`, the values are read from elsewhere when
    exposed or read (for counts already kept on a hot path, e.g. the publisher's acks)."""

    kind = "untyped"

    def __init__(
        self, name: str, help: str, labels: tuple[str, ...] = (), collect: Collect | None = None
    ) -> None:
        self.name, self.help, self.label_names = name, help, labels
        self.values: dict[tuple[str, ...], float] = {}
        self.collect = collect

    def _refresh(self) -> None:
        if self.collect is not None:
            self.values = dict(self.collect())

    def expose(self) -> list[str]:
        self._refresh()
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key, v in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {v:g}")
        return lines

    def get(self, *labels: str) -> float:
        self._refresh()
        return self.values.get(labels, 0.0)


class Counter(_Metric):
    kind = "counter"

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def counter(
        self, name: str, help: str, labels: tuple[str, ...] = (), collect: Collect | None = None
    ) -> Counter:
        m = Counter(name, help, labels, collect)
        self.metrics.append(m)
        return m

    def gauge(
        self, name: str, help: str, labels: tuple[str, ...] = (), collect: Collect | None = None
    ) -> Gauge:
        m = Gauge(name, help, labels, collect)
        self.metrics.append(m)
        return m

    def expose(self) -> str:
        return "\n".join(line for m in self.metrics for line in m.expose()) + "\n"
