"""The live figures of `ssmd up`, read from each child's /metrics (and the connector's /health).

`Sampler.sample()` polls the endpoints once and returns a `Figures`; rates come from
the difference with the previous sample. `render()` draws the figures with rich;
`Figures.as_dict()` is what the JSON logs carry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ssmd.up.components import split_child_name

__all__ = ["Figures", "Sampler", "Samples", "human_bytes", "parse_metrics", "render"]

# name{labels} value  (Prometheus text exposition 0.0.4; timestamps are ignored)
_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Samples:
    """Parsed metrics: name -> [(labels, value)]."""

    def __init__(self, data: dict[str, list[tuple[dict[str, str], float]]] | None = None) -> None:
        self.data = data or {}

    def total(self, name: str, **match: str) -> float:
        """Sum of the samples of `name` whose labels include `match`."""
        return sum(
            v
            for labels, v in self.data.get(name, [])
            if all(labels.get(k) == want for k, want in match.items())
        )

    def has(self, name: str) -> bool:
        return name in self.data


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_metrics(text: str) -> Samples:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(3) or "")}
        out.setdefault(m.group(1), []).append((labels, value))
    return Samples(out)


@dataclass
class Figures:
    at: float = field(default_factory=time.monotonic)
    web_url: str | None = None
    components: dict[str, str] = field(default_factory=dict)  # name -> state
    shards: list[dict[str, Any]] = field(default_factory=list)
    markets_subscribed: float = 0.0
    frames_received: float = 0.0
    messages_published: float = 0.0
    received_per_s: float = 0.0
    published_per_s: float = 0.0
    gaps: float = 0.0
    archived: float = 0.0  # raw lines and records written by the archiver
    archived_per_s: float = 0.0
    files_sealed: float = 0.0
    sealed_bytes: float = 0.0
    spool_bytes: float = 0.0
    spool_records: float = 0.0
    gateway_clients: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "web_url": self.web_url,
            "components": self.components,
            "shards": [
                {k: s.get(k) for k in ("shard", "state", "markets", "subscribed")}
                for s in self.shards
            ],
            "markets_subscribed": int(self.markets_subscribed),
            "frames_received": int(self.frames_received),
            "messages_published": int(self.messages_published),
            "received_per_s": round(self.received_per_s, 1),
            "published_per_s": round(self.published_per_s, 1),
            "gaps": int(self.gaps),
            "archived_records": int(self.archived),
            "archived_per_s": round(self.archived_per_s, 1),
            "files_sealed": int(self.files_sealed),
            "sealed_bytes": int(self.sealed_bytes),
            "spool_bytes": int(self.spool_bytes),
            "spool_records": int(self.spool_records),
            "gateway_clients": None if self.gateway_clients is None else int(self.gateway_clients),
        }


def figures_from(
    connector: Samples | None,
    connector_health: dict[str, Any] | None,
    archiver: Samples | None,
    gateway: Samples | None,
    previous: Figures | None,
    now: float | None = None,
) -> Figures:
    """Figures from parsed endpoints (None = not reachable now: the last value stays)."""
    f = Figures(at=time.monotonic() if now is None else now)
    if previous is not None:
        for name in ("frames_received", "messages_published", "archived", "gaps"):
            setattr(f, name, getattr(previous, name))
        f.shards, f.markets_subscribed = previous.shards, previous.markets_subscribed
        f.files_sealed, f.sealed_bytes = previous.files_sealed, previous.sealed_bytes
        f.spool_bytes, f.spool_records = previous.spool_bytes, previous.spool_records
        f.gateway_clients = previous.gateway_clients
    if connector is not None:
        f.frames_received = connector.total("ssmd_connector_messages_received_total")
        f.messages_published = connector.total("ssmd_connector_messages_published_total")
        f.markets_subscribed = connector.total("ssmd_connector_markets_subscribed")
        f.gaps = connector.total("ssmd_connector_events_total", kind="gap")
    if connector_health is not None:
        f.shards = list(connector_health.get("shards") or [])
    if archiver is not None:
        f.archived = archiver.total("ssmd_archiver_records_written_total")
        f.files_sealed = archiver.total("ssmd_archiver_files_sealed_total")
        f.sealed_bytes = archiver.total("ssmd_archiver_sealed_bytes_total")
        f.spool_bytes = archiver.total("ssmd_archiver_spool_bytes")
        f.spool_records = archiver.total("ssmd_archiver_spool_records")
    if gateway is not None and gateway.has("ssmd_gateway_clients_connected"):
        f.gateway_clients = gateway.total("ssmd_gateway_clients_connected")
    if previous is not None and f.at > previous.at:
        dt = f.at - previous.at

        def rate(now_v: float, then_v: float) -> float:
            # A restarted child starts its counters at 0: no negative rates.
            return max(0.0, now_v - then_v) / dt

        f.received_per_s = rate(f.frames_received, previous.frames_received)
        f.published_per_s = rate(f.messages_published, previous.messages_published)
        f.archived_per_s = rate(f.archived, previous.archived)
    return f


_SAMPLED = ("connector", "archiver", "gateway")


class Sampler:
    """Polls the children's endpoints: the figures are the sums over the feeds the run
    captures. Each component maps a feed's label ("" for the environment's own feed, the
    feed's name for a further venue) to the child's base URL."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        connectors: Mapping[str, str] | None = None,
        archivers: Mapping[str, str] | None = None,
        gateways: Mapping[str, str] | None = None,
        web_url: str | None = None,
    ) -> None:
        self.http = http
        self.connectors = dict(connectors or {})
        self.archivers = dict(archivers or {})
        self.gateways = dict(gateways or {})
        self.web_url = web_url
        self.last: Figures | None = None

    @classmethod
    def from_endpoints(
        cls,
        http: httpx.AsyncClient,
        endpoints: Mapping[str, str],
        web_url: str | None = None,
    ) -> Sampler:
        """A sampler of the endpoints `ssmd up`'s state file records: child name -> URL,
        a further venue's named after it (connector-kraken)."""
        by_component: dict[str, dict[str, str]] = {c: {} for c in _SAMPLED}
        for name, url in endpoints.items():
            component, feed = split_child_name(name)
            if component in by_component:
                by_component[component][feed] = url
        return cls(
            http,
            connectors=by_component["connector"],
            archivers=by_component["archiver"],
            gateways=by_component["gateway"],
            web_url=web_url,
        )

    async def _text(self, url: str) -> str | None:
        try:
            r = await self.http.get(url)
        except httpx.HTTPError:
            return None
        return r.text if r.status_code in (200, 503) else None

    async def _metrics(self, urls: Mapping[str, str]) -> Samples | None:
        """Every child's metrics as one set (None when none answers: the last figures stay)."""
        found = [await self._text(url + "/metrics") for url in urls.values()]
        texts = [t for t in found if t is not None]
        if not texts:
            return None
        merged: dict[str, list[tuple[dict[str, str], float]]] = {}
        for text in texts:
            for name, samples in parse_metrics(text).data.items():
                merged.setdefault(name, []).extend(samples)
        return Samples(merged)

    async def _shards(self) -> dict[str, Any] | None:
        """The connectors' shards, each named with its feed's label when it has one."""
        import orjson

        shards: list[dict[str, Any]] = []
        answered = False
        for label, url in self.connectors.items():
            text = await self._text(url + "/health")
            if text is None:
                continue
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            answered = True
            for shard in doc.get("shards") or []:
                shards.append(
                    {**shard, "shard": f"{label}#{shard.get('shard')}"} if label else shard
                )
        return {"shards": shards} if answered else None

    async def sample(self, components: dict[str, str] | None = None) -> Figures:
        f = figures_from(
            await self._metrics(self.connectors),
            await self._shards(),
            await self._metrics(self.archivers),
            await self._metrics(self.gateways),
            self.last,
        )
        f.web_url = self.web_url
        f.components = dict(components or {})
        self.last = f
        return f


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover - the loop returns at GB


def _shards_text(shards: Iterable[dict[str, Any]]) -> str:
    parts = [
        f"{_shard_label(s.get('shard'))} {s.get('subscribed', s.get('markets', 0))} {s.get('state')}"
        for s in shards
    ]
    return ", ".join(parts) or "none yet"


def _shard_label(shard: Any) -> str:
    # A further venue's shards are named "kraken#0" by the sampler; the others are numbers.
    return shard if isinstance(shard, str) and "#" in shard else f"#{shard}"


def render(f: Figures, env: str, stopping: bool = False) -> Any:
    """A rich renderable of the figures."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        ("ssmd up", "bold"),
        f"  {env}   web page: ",
        (f.web_url or "(no gateway)", "bold cyan"),
        "   stopping..." if stopping else "   Ctrl-C stops",
    )
    states = Text("  ".join(f"{n}: {s}" for n, s in f.components.items()), style="dim")
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row(
        "markets",
        f"{int(f.markets_subscribed):,} subscribed; shards: {_shards_text(f.shards)}",
    )
    t.add_row(
        "frames",
        f"{f.received_per_s:,.0f}/s received; {f.published_per_s:,.0f} messages/s published, "
        f"raw and normalized ({int(f.frames_received):,} / {int(f.messages_published):,} in all)",
    )
    t.add_row(
        "archive",
        f"{int(f.archived):,} records ({f.archived_per_s:,.0f}/s); "
        f"{int(f.files_sealed):,} files sealed ({human_bytes(f.sealed_bytes)}); "
        f"{int(f.spool_records):,} records spooled ({human_bytes(f.spool_bytes)}) "
        "until their hour/day closes",
    )
    clients = "n/a" if f.gateway_clients is None else f"{int(f.gateway_clients):,}"
    t.add_row("gateway", f"{clients} clients connected")
    t.add_row("gaps", f"{int(f.gaps):,} so far")
    return Group(head, states, t)
