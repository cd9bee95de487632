"""When the capture was not running or not connected, from the connector's events.

A connector process (a run) says that it is capturing with a `heartbeat` event at start
and every heartbeat interval (conn_id: its run id; duration_ns: the interval), and says
`stopped` when it stops on request, after its shards said `disconnected`. From those
and the shards' `connected` / `disconnected` events come these gaps:

  disconnect          a shard's `disconnected`, until its next `connected` (or until
                      the process ended: the outage below takes over from there)
  connector_stopped   a run's `stopped` (said when it stops reading, before its shards
                      close), until the next run's first `connected`
  connector_crashed   a run that ended without `stopped` (killed, host lost): from its
                      last event until the next run's first `connected`. Found by a new
                      run starting while no other run is alive; by a shard's new
                      connection while its old one was never closed (events of a
                      connector without heartbeats); or, at the horizon, by heartbeats
                      that stopped more than three intervals before it.

A run that is still alive when another starts (runs overlap) leaves no gap between them.

Shard groups (several connector processes sharing the selection, ssmd.connector.groups)
are walked apart, each group's events on their own (an event's group is in its shard
number): one group's death is a gap while the others capture on. Its outage names the
group's markets, from the `tickers` of its latest heartbeat that had any, since the
other groups' markets were captured all along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssmd.connector.groups import group_key

__all__ = ["DEFAULT_HEARTBEAT_NS", "Outage", "outages"]

DEFAULT_HEARTBEAT_NS = 5_000_000_000  # for heartbeats that do not say their interval
SILENT_INTERVALS = 3  # heartbeats missed before a run with no successor counts as ended

# (start ns, end ns, reason, detail, markets ([] = every market))
Outage = tuple[int, int, str, str, list[str]]


@dataclass
class _Run:
    first: int
    last: int  # the last heartbeat (or the stop)
    interval: int = 0
    stopped: int | None = None
    why: str = ""

    @property
    def end(self) -> int:
        return self.stopped if self.stopped is not None else self.last

    def alive_at(self, t: int) -> bool:
        return self.first <= t <= self.end


def _ts(ev: dict[str, Any]) -> int:
    return int(ev.get("receive_ts") or 0)


def _runs(evs: list[dict[str, Any]]) -> dict[int, _Run]:
    runs: dict[int, _Run] = {}
    for ev in evs:
        kind = ev.get("event")
        if kind not in ("heartbeat", "stopped"):
            continue
        t, run_id = _ts(ev), int(ev.get("conn_id") or 0)
        run = runs.setdefault(run_id, _Run(t, t))
        run.first, run.last = min(run.first, t), max(run.last, t)
        if kind == "heartbeat":
            run.interval = max(run.interval, int(ev.get("duration_ns") or 0))
        else:
            run.stopped = t
            run.why = str(ev.get("reason") or "")
    return runs


class _Sweep:
    """Walks the events in time order, keeping what is down and since when."""

    def __init__(self, runs: dict[int, _Run], grouped: bool = False) -> None:
        self.runs = runs
        self.grouped = grouped
        self.markets: list[str] = []  # a group's markets, as its latest heartbeat said
        self.outage_markets: list[str] = []  # [] = every market
        self.out: list[Outage] = []
        self.open_conns: dict[int, int] = {}  # shard -> its connection, not closed yet
        self.conn_last: dict[int, int] = {}  # open connection -> time of its latest event
        self.down: dict[int, tuple[int, str, list[str]]] = {}  # shard -> disconnected since
        self.outage: tuple[int, str, str] | None = None  # since, reason, detail
        self.last_sign = 0  # the latest connector event so far: the process was alive then
        self.started: set[int] = set()

    def alive(self, t: int, but: int | None = None) -> bool:
        return any(r.alive_at(t) for run_id, r in self.runs.items() if run_id != but)

    def begin(self, since: int, reason: str, detail: str) -> None:
        """The capture ended at `since`: every shard is down from there."""
        if self.outage is None:
            self.outage = (since, reason, detail)
            self.outage_markets = list(self.markets) if self.grouped else []
        for t, detail_d, markets in self.down.values():
            self.out.append((t, max(t, since), "disconnect", detail_d, markets))
        self.down.clear()
        self.open_conns.clear()
        self.conn_last.clear()

    def run_event(self, ev: dict[str, Any], t: int) -> None:
        run_id = int(ev.get("conn_id") or 0)
        if run_id not in self.started:
            self.started.add(run_id)
            self.run_started(run_id, t)
        if ev.get("event") == "stopped" and not self.alive(t, but=run_id):
            self.begin(t, "connector_stopped", f"run {run_id}: {ev.get('reason') or 'stopped'}")
        if self.grouped and ev.get("event") == "heartbeat" and ev.get("tickers"):
            self.markets = [str(x) for x in ev["tickers"]]

    def run_started(self, run_id: int, t: int) -> None:
        """A new run: if nothing else is running, whatever ran before has ended."""
        if self.outage is not None or self.alive(t, but=run_id):
            return
        ended = [(r.end, i) for i, r in self.runs.items() if i != run_id and r.end < t]
        if ended:
            _, prev_id = max(ended)
            prev = self.runs[prev_id]
            if prev.stopped is None:
                self.begin(
                    max(prev.end, self.last_sign),
                    "connector_crashed",
                    f"run {prev_id}: ended without stopping",
                )
        elif self.open_conns:
            self.begin(
                self.last_sign,
                "connector_crashed",
                "a connector without heartbeats ended without stopping",
            )

    def connected(self, ev: dict[str, Any], t: int) -> None:
        shard = int(ev.get("shard") or 0)
        if self.outage is None and shard in self.open_conns and not self.alive(t):
            # A new connection while the old one was never closed: its process is gone
            # since the last event of its connections.
            old = self.open_conns[shard]
            self.begin(
                max(self.conn_last.values()),
                "connector_crashed",
                f"shard {shard}: connection {old} was never closed",
            )
        if self.outage is not None:
            since, reason, detail = self.outage
            self.out.append((since, max(since, t), reason, detail, self.outage_markets))
            self.outage = None
        was_down = self.down.pop(shard, None)
        if was_down is not None:
            since, detail, markets = was_down
            self.out.append((since, t, "disconnect", detail, markets))
        self.conn_last.pop(self.open_conns.get(shard, 0), None)
        conn = self.open_conns[shard] = int(ev.get("conn_id") or 0)
        self.conn_last[conn] = t

    def disconnected(self, ev: dict[str, Any], t: int) -> None:
        shard = int(ev.get("shard") or 0)
        conn = self.open_conns.pop(shard, None)
        self.conn_last.pop(conn or 0, None)
        if self.outage is not None:
            return  # the process is stopping: its outage covers the shard
        tickers = [str(x) for x in ev.get("tickers") or []]
        self.down[shard] = (t, f"shard {shard}: {ev.get('reason') or ''}", tickers)

    def finish(self, horizon_ns: int) -> list[Outage]:
        """What is still down at the horizon stays down until it."""
        latest = max(self.runs.values(), key=lambda r: r.end, default=None)
        if self.outage is None and latest is not None and latest.stopped is None:
            silent = SILENT_INTERVALS * (latest.interval or DEFAULT_HEARTBEAT_NS)
            if horizon_ns - latest.last > silent and not self.alive(horizon_ns):
                run_id = next(i for i, r in self.runs.items() if r is latest)
                self.begin(
                    max(latest.last, min(self.last_sign, horizon_ns)),
                    "connector_crashed",
                    f"run {run_id}: its heartbeats stopped",
                )
        if self.outage is not None:
            since, reason, detail = self.outage
            self.out.append((since, max(since, horizon_ns), reason, detail, self.outage_markets))
        for t, detail, markets in self.down.values():
            self.out.append((t, max(t, horizon_ns), "disconnect", detail, markets))
        return self.out


def outages(evs: list[dict[str, Any]], horizon_ns: int) -> list[Outage]:
    """The outages in connector events sorted by receive time (the archiver's own events
    left out), open ones ending at `horizon_ns`; not clipped to a day. Each shard group's
    apart, the ungrouped connector's first."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for ev in evs:
        groups.setdefault(group_key(int(ev.get("shard") or 0)), []).append(ev)
    out: list[Outage] = []
    for key, group_evs in sorted(groups.items()):
        out += _group_outages(group_evs, horizon_ns, grouped=key != 0)
    return out


def _group_outages(evs: list[dict[str, Any]], horizon_ns: int, grouped: bool) -> list[Outage]:
    sweep = _Sweep(_runs(evs), grouped)
    for ev in evs:
        t, kind = _ts(ev), ev.get("event")
        if kind in ("heartbeat", "stopped"):
            sweep.run_event(ev, t)
        elif kind == "connected":
            sweep.connected(ev, t)
        elif kind == "disconnected":
            sweep.disconnected(ev, t)
        conn = int(ev.get("conn_id") or 0)
        if conn in sweep.conn_last:
            sweep.conn_last[conn] = t
        sweep.last_sign = max(sweep.last_sign, t)
    return sweep.finish(horizon_ns)
