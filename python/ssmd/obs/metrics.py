"""A tiny Prometheus registry: counters and gauges with labels, text exposition format 0.0.4."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Counter", "Gauge", "Registry"]


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc, strict=True)) + "}"


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help, labels
        self.values: dict[tuple[str, ...], float] = {}

    def expose(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key, v in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {v:g}")
        return lines

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)


class Counter(_Metric):
    """A counter; with `collect`, its values are read from elsewhere at exposition
    (for counts already kept on a hot path, e.g. the publisher's acks)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[tuple[str, ...], float]] | None = None,
    ) -> None:
        super().__init__(name, help, labels)
        self.collect = collect

    def expose(self) -> list[str]:
        if self.collect is not None:
            self.values = dict(self.collect())
        return super().expose()

    def get(self, *labels: str) -> float:
        if self.collect is not None:
            self.values = dict(self.collect())
        return super().get(*labels)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by


class Gauge(_Metric):
    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[tuple[str, ...], float]] | None = None,
    ) -> None:
        super().__init__(name, help, labels)
        self.collect = collect

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def expose(self) -> list[str]:
        if self.collect is not None:
            self.values = dict(self.collect())
        return super().expose()


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def counter(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[tuple[str, ...], float]] | None = None,
    ) -> Counter:
        m = Counter(name, help, labels, collect)
        self.metrics.append(m)
        return m

    def gauge(
        self,
        name: str,
        help: str,
        labels: tuple[str, ...] = (),
        collect: Callable[[], dict[tuple[str, ...], float]] | None = None,
    ) -> Gauge:
        m = Gauge(name, help, labels, collect)
        self.metrics.append(m)
        return m

    def expose(self) -> str:
        return "\n".join(line for m in self.metrics for line in m.expose()) + "\n"
