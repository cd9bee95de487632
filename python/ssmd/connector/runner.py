"""The connector: shards -> capture queue -> pipeline -> JetStream, plus health.

Its parts: the shards (shards.py) read the venue; the capture queue (capture_queue.py)
holds frames and events; the pipeline (pipeline.py) normalizes them into messages; the
publisher sends them. What a batch reveals goes to the events (events.py), the repair of
losses (repair.py, resync.py) and the market selection (tracking.py).

    settings = Settings.from_environment(load_environment("kalshi-dev"))
    await Connector(settings).run(stop_event)

Queues and their policies:
  - websockets' receive buffer per shard (max_queue frames): the socket's own flow
    control; our reader never blocks on anything else.
  - the capture queue (spool.py): memory, then spool file, then drop-with-event.
  - the publisher window (max_inflight unacked messages): the pump blocks, frames wait in
    the capture queue (and spill to the spool when NATS is slow or down).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssmd import core
from ssmd.aio import cancel_and_wait
from ssmd.bus import subjects
from ssmd.bus.connection import NatsClient, connect, server_addresses
from ssmd.bus.publisher import Publisher
from ssmd.bus.stream import ensure_stream
from ssmd.config import NatsSettings, ResolvedEnvironment, parse_duration
from ssmd.config.models.environment import Symbols
from ssmd.connector.capture_queue import CaptureQueue, Item
from ssmd.connector.events import EventLog
from ssmd.connector.groups import GROUP_STRIDE, ShardGroup
from ssmd.connector.metrics import ConnectorMetrics
from ssmd.connector.pipeline import Outcome, Pipeline
from ssmd.connector.repair import Repair
from ssmd.connector.shards import Shard, ShardConfig, ShardSet, next_conn_id
from ssmd.connector.tracking import Tracking
from ssmd.exceptions import ConfigError
from ssmd.obs.health import HealthServer
from ssmd.secmaster.service import selection_reader
from ssmd.venues import venue as venue_named
from ssmd.venues.base import MAX_FRAME_BYTES, Liveness
from ssmd.venues.kalshi import auth
from ssmd.venues.kalshi.ws import Credentials

__all__ = ["Connector", "Settings", "load_credentials"]

log = logging.getLogger(__name__)

BOOK_CHANNEL = "orderbook_delta"  # the subscription whose snapshots a resync asks for
STREAM_POLL_INTERVAL = 15.0  # seconds between reads of the stream's size (ssmd_stream_*)


def _secs(value: object) -> float:
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(str(value))


def load_credentials(env: ResolvedEnvironment) -> Credentials:
    """KALSHI_API_KEY and the PEM at KALSHI_PRIVATE_KEY_PATH, or a key `ssmd key set` keeps
    (`sealed:NAME`: the PEM itself, not a path); ConfigError (no secret shown)."""
    try:
        key_id = env.secret("kalshi_api_key").reveal()
        pem_secret = env.secret("kalshi_private_key")
        value = pem_secret.reveal()
    except ConfigError as exc:
        raise ConfigError(
            f"Kalshi credentials are missing: {exc}; the connector needs KALSHI_API_KEY (the "
            "key id) and KALSHI_PRIVATE_KEY_PATH (the PEM file), or a key kept by `ssmd key set` "
            "(docs/keys.md)"
        ) from None
    if pem_secret.scheme == "sealed":
        return Credentials(key_id, auth.private_key_from_pem(value.encode(), pem_secret.ref))
    return Credentials(key_id, auth.load_private_key(value))


@dataclass(frozen=True)
class Settings:
    env: str
    feed: str
    nats: NatsSettings
    ws_url: str
    rest_url: str
    credentials: Any  # what the venue's session signs in with (Kalshi: Credentials)
    symbols: Symbols
    market_channels: tuple[str, ...] = ("orderbook_delta", "trade", "ticker")
    global_channels: tuple[str, ...] = ("market_lifecycle_v2",)
    markets_per_connection: int = 200
    subscribe_batch: int = 200
    liveness: Liveness = field(default_factory=Liveness)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_auth_failures: int = 5
    # The largest exchange frame read; must fit the NATS server's max_payload (checked at
    # start). A larger one closes its connection and is recorded as a disconnect gap.
    max_frame_bytes: int = MAX_FRAME_BYTES
    sync_interval: float = 900.0
    sweep_interval: float = 1.0
    # Book checkpoints (Pipeline.checkpoint): the changed books this often, and every
    # book every `checkpoint_full_every` rounds so that one stays within retention.
    checkpoint_interval: float = 30.0
    checkpoint_full_every: int = 120
    spool_path: Path = Path("data/spool/connector.spool")
    memory_bytes: int = 64 * 1024 * 1024
    spool_bytes: int = 1024 * 1024 * 1024
    max_inflight: int = 8192
    ack_timeout: float = 5.0
    batch_size: int = 1024
    linger: float = 0.002
    drain_timeout: float = 20.0
    # A `heartbeat` event this often says the process is capturing; the archiver finds a
    # process that ended without a `stopped` event by its heartbeats ceasing.
    heartbeat_interval: float = 5.0
    resync_timeout: float = 5.0  # snapshots due this long after a get_snapshot
    resync_retries: int = 1  # get_snapshot again this often, then resubscribe the channel
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    record_latency: bool = False
    clock: Callable[[], float] = field(default=time.time, compare=False)
    # The security master's markets for this selection; when set, the selection reads
    # them instead of Kalshi REST (ssmd.secmaster.selection_reader).
    stored_markets: Callable[[], list[dict[str, Any]]] | None = field(default=None, compare=False)
    # One of several connector processes sharing the selection (ssmd.connector.groups).
    shard_group: ShardGroup | None = None
    # The exchange's protocol (ssmd.venues): the feed's name.
    venue: str = "kalshi"

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ConfigError(
                f"the connector's heartbeat interval must be more than 0 seconds, got "
                f"{self.heartbeat_interval}. Fix: pass --heartbeat-interval with a positive "
                "number of seconds (default 5)"
            )

    @classmethod
    def from_environment(cls, env: ResolvedEnvironment, **changes: Any) -> Settings:
        ws = env.limits.ws
        chans = tuple(c.name for c in env.channels)
        the_venue = venue_named(env.feed.metadata.name)
        global_only = the_venue.global_channels
        if env.nats.embedded and "nats" not in changes:
            raise ConfigError(
                f"environment {env.name} uses the embedded NATS server, which `ssmd up` starts; "
                "for `ssmd connector run` pass --nats-url (or set SSMD_NATS_URL)"
            )
        base = cls(
            env=env.name,
            feed=env.feed.metadata.name,
            nats=env.nats,
            ws_url=env.endpoint.ws_url,
            rest_url=env.endpoint.rest_url,
            credentials=None,
            symbols=env.symbols,
            market_channels=tuple(c for c in chans if c not in global_only),
            global_channels=tuple(c for c in chans if c in global_only),
            markets_per_connection=ws.markets_per_connection,
            subscribe_batch=ws.subscribe_batch,
            liveness=Liveness(
                ping_interval=_secs(ws.ping_interval),
                ping_timeout=_secs(ws.ping_timeout),
                stale_after=_secs(ws.stale_after),
            ),
            sync_interval=_secs(env.symbols.sync_interval),
            spool_path=env.data_dir
            / "spool"
            / _spool_name(env.name, env.extra_feed, changes.get("shard_group")),
            # the selection a `symbols` change asks for, not the environment's
            stored_markets=selection_reader(env, changes.get("symbols")),
            venue=the_venue.name,
        )
        if "credentials" not in changes:
            changes["credentials"] = the_venue.credentials(env)
        return replace(base, **changes)


def _spool_name(env: str, extra_feed: str | None, group: ShardGroup | None) -> str:
    # Each venue and group has its own: a spool is read back by the run that finds it.
    parts = [f"connector-{env}", extra_feed, group.spool_name if group else None, "spool"]
    return ".".join(p for p in parts if p)


# Room for a raw frame's headers (message id, receive time, connection) in one message.
HEADER_ROOM = 4096


def check_frame_room(max_frame_bytes: int, max_payload: int, url: str) -> None:
    """Refuse to start when the largest frame read would not fit one NATS message: a
    publish over the server's max_payload closes the connection, and the re-publish after
    reconnect would close it again."""
    if max_frame_bytes + HEADER_ROOM > max_payload:
        raise ConfigError(
            f"the NATS server at {server_addresses(url)} takes messages of at most {max_payload:,} "
            f"bytes, less than the connector's largest frame ({max_frame_bytes:,} bytes) plus "
            f"{HEADER_ROOM:,} bytes of headers. Fix: raise the server's max_payload, or lower "
            "the connector's max_frame_bytes"
        )


class Connector:
    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.prefix = s.nats.subject_prefix
        self.venue = venue_named(s.venue)
        env_name, feed_name = self.prefix.split(".", 1)
        self.pipeline = Pipeline(env_name, feed_name, self.venue.codec())
        group = s.shard_group
        # The global channels (market lifecycle) once per environment: group 0 captures
        # them, the other groups follow lifecycle from the stream (_follow_lifecycle).
        self.follows_lifecycle = group is not None and group.index > 0
        self.base_shard = group.shard_base if group is not None else 0
        id_space = (group.id_residue, GROUP_STRIDE) if group is not None else (0, 1)
        self.queue = CaptureQueue(
            s.spool_path, memory_bytes=s.memory_bytes, spool_bytes=s.spool_bytes
        )
        self.shards = ShardSet(
            ShardConfig(
                url=s.ws_url,
                credentials=s.credentials,
                market_channels=s.market_channels,
                global_channels=() if self.follows_lifecycle else s.global_channels,
                markets_per_connection=s.markets_per_connection,
                subscribe_batch=s.subscribe_batch,
                liveness=s.liveness,
                backoff_base=s.backoff_base,
                backoff_cap=s.backoff_cap,
                max_auth_failures=s.max_auth_failures,
                max_frame_bytes=s.max_frame_bytes,
                first_number=self.base_shard,
                id_residue=id_space[0],
                id_stride=id_space[1],
                venue=self.venue,
            ),
            self,
        )
        self.shards.on_task = self._watch
        self.tracking: Tracking | None = None
        self.publisher: Publisher | None = None
        self.nc: NatsClient | None = None
        self.health_server: HealthServer | None = None
        # This process's run id: in its event message ids, and the conn_id of its
        # heartbeat and stopped events.
        self.run_id = next_conn_id(*id_space)
        self._fatal: BaseException | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self.latencies_ns: deque[int] = deque(maxlen=200_000)
        self._record_latency = s.record_latency
        self.publish_lag_ns = 0  # receipt -> PubAck of the last raw frame
        self.exchange_lag_ns = 0  # receipt - exchange time, newest record that has one
        self.last_frame_ns = 0
        self.frames_in = 0
        self.frames_acked = 0  # raw frames stored by JetStream
        self.metrics = ConnectorMetrics(self)
        self.events = EventLog(
            self.queue, self.metrics.events, s.feed, self.run_id, self.base_shard
        )
        self.repair = Repair(
            self.events,
            self.shards,
            timeout=s.resync_timeout,
            retries=s.resync_retries,
            spawn=self._spawn,
            on_timeout=lambda: self.metrics.errors.labels(s.feed, "resync_timeout").inc(),
            on_lost=lambda: self.metrics.errors.labels(s.feed, "seq_gap_lost").inc(),
        )

    # ---- shard hooks ------------------------------------------------------------------

    def frames(self, shard: Shard, first_no: int, frames: list[bytes], receive_ns: int) -> None:
        self.frames_in += len(frames)
        q = self.queue
        conn = shard.conn_id
        q.put_many([Item(conn, first_no + i, receive_ns, data) for i, data in enumerate(frames)])
        if q.transitions:
            self._report_queue()

    def event(self, kind: str, shard: Shard | None, reason: str = "", **fields: Any) -> None:
        """A connector event (EventLog.emit)."""
        self.events.emit(kind, shard, reason, **fields)

    def count_error(self, error_type: str) -> None:
        self.metrics.errors.labels(self.settings.feed, error_type).inc()

    def _report_queue(self) -> None:
        while self.queue.transitions:
            state, detail = self.queue.transitions.popleft()
            if state == "memory":
                log.info("capture queue back in memory")
                continue
            self.metrics.errors.labels(self.settings.feed, f"buffer_{state}").inc()
            self.event("buffer_full", None, f"{state}: {detail}")

    # ---- tasks ------------------------------------------------------------------------

    def _watch(self, task: asyncio.Task[Any]) -> None:
        self._tasks.append(task)

        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None and self._fatal is None:
                log.error("task %s failed: %r", t.get_name(), exc)
                self._fatal = exc
                self._stop.set()

        task.add_done_callback(done)

    async def _heartbeat(self) -> None:
        """A `heartbeat` event now and every `heartbeat_interval`: the archiver takes this
        process for running until its heartbeats cease or it says `stopped`."""
        interval = self.settings.heartbeat_interval
        grouped = self.settings.shard_group is not None
        while True:
            self.event(
                "heartbeat",
                None,
                conn_id=self.run_id,
                duration_ns=int(interval * 1e9),
                # a group's markets: the archiver's gap for them if this process dies
                tickers=sorted(self.shards.owner) if grouped else (),
            )
            await asyncio.sleep(interval)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def new_publisher(self, name: str) -> Publisher:
        """The publisher `run` sends through (its own connection to NATS)."""
        s = self.settings
        return Publisher(
            s.nats.url,
            name,
            max_inflight=s.max_inflight,
            ack_timeout=s.ack_timeout,
            on_ack=self._acked,
            keep_frame_times=self._record_latency,
            on_error=lambda why: self.metrics.errors.labels(s.feed, "publish").inc(),
        )

    def _acked(self, acked: core.Acked) -> None:
        # Per read of PubAcks (the other counters are read from the publisher on demand).
        if acked.frames:
            self.frames_acked += acked.frames
            now = time.time_ns()
            self.publish_lag_ns = now - acked.newest_frame_ns
            if self._record_latency:
                self.latencies_ns.extend(now - t for t in acked.frame_times)

    async def _pump(self) -> None:
        q, s = self.queue, self.settings
        assert self.publisher is not None
        publish = self.publisher.publish_many
        linger = 0.0
        next_checkpoint = time.monotonic() + s.checkpoint_interval
        rounds = 0
        while True:
            items = await q.get_batch(s.batch_size, linger)
            # Wait for more only under load (big batches); a trickle goes out at once.
            linger = s.linger if len(items) >= 64 else 0.0
            outcome = self.pipeline.process(items)
            self._account(outcome)
            if time.monotonic() >= next_checkpoint:
                # After the batch, so a checkpoint follows every delta it holds.
                everything = rounds % s.checkpoint_full_every == 0
                outcome.messages.extend(self.pipeline.checkpoint(time.time_ns(), everything))
                rounds += 1
                next_checkpoint = time.monotonic() + s.checkpoint_interval
            await publish(outcome.messages)
            self._react(outcome)

    def _account(self, o: Outcome) -> None:
        feed = self.settings.feed
        self.sample_lag(o.messages)
        for kind, n in o.frames.items():
            self.metrics.received.labels(feed, kind).inc(n)
        for problem, n in o.problems.items():
            self.metrics.errors.labels(feed, problem).inc(n)
        if o.duplicates:
            self.metrics.errors.labels(feed, "seq_duplicate").inc(o.duplicates)

    def sample_lag(self, messages: core.OutBatch) -> None:
        """Once per batch, not per message: the receipt time of its newest frame, and the
        exchange-to-receipt lag of its newest record that carries an exchange time (a few
        records at most are decoded; connector events and some lifecycle records have none)."""
        if messages.last_frame_ns:
            self.last_frame_ns = messages.last_frame_ns
        newest = range(len(messages) - 1, -1, -1)
        records = (i for i in newest if messages.receive_ns(i) and not messages.is_frame(i))
        for i in itertools.islice(records, 4):
            for rec in core.decode_records(messages.payload(i)):
                exchange_ns = int(rec.get("exchange_ts") or 0)
                if exchange_ns:
                    self.exchange_lag_ns = messages.receive_ns(i) - exchange_ns
                    return

    def _react(self, o: Outcome) -> None:
        self.repair.batch(o.gaps, o.resynced)
        if self.tracking is not None:
            self.tracking.lifecycle(o.lifecycle)

    # ---- health -----------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, object]]:
        shards = [sh.health() for sh in sorted(self.shards.shards.values(), key=lambda x: x.number)]
        nats_ok = bool(self.nc is not None and self.nc.is_connected)
        tracking = self.tracking
        selected = tracking is not None and tracking.selected
        ok = (
            nats_ok
            and all(sh["state"] == "streaming" for sh in shards)
            and self._fatal is None
            and selected
        )
        extra: dict[str, object] = {}
        if not selected:
            # Running with no selection of its own would capture nothing, or only the
            # explicit tickers, and look healthy: say so until a read succeeds.
            why = tracking.refresh_error if tracking is not None else ""
            extra["reason"] = f"no market selection yet: {why or 'not read yet'}"
        return ok, {
            "status": "ok" if ok else "degraded",
            **extra,
            "nats": "connected" if nats_ok else "disconnected",
            "queue": {
                "state": self.queue.state,
                "memory_bytes": self.queue.memory_used,
                "spool_bytes": self.queue.spool_used,
                "dropped": self.queue.dropped,
            },
            "publisher": {
                "inflight": self.publisher.inflight if self.publisher else 0,
                "acked": self.publisher.acked if self.publisher else 0,
            },
            "markets": len(self.shards.owner),
            "subscribed": len(self.shards.subscribed),
            "selection": tracking.health() if tracking is not None else {"selected": False},
            "shard_group": self.settings.shard_group.label if self.settings.shard_group else None,
            "shards": shards,
        }

    async def resync_market(self, params: dict[str, str]) -> tuple[int, dict[str, object]]:
        """`POST /control/resync?ticker=T`: ask the exchange for a fresh order-book snapshot
        of one market on its shard's book subscription (an operator who doubts a book).
        The snapshot replaces the book when it arrives, as after a gap."""
        ticker = params.get("ticker", "").strip()
        if not ticker:
            return 400, {"error": "give the market: /control/resync?ticker=TICKER"}
        shard = self.shards.owner.get(ticker)
        if shard is None:
            return 404, {"error": f"{ticker} is not subscribed by this connector"}
        sid = shard.sids.get(BOOK_CHANNEL)
        if shard.state != "streaming" or sid is None:
            return 409, {
                "error": f"shard {shard.number} of {ticker} is {shard.state}: it subscribes "
                "afresh (with snapshots) when it streams again"
            }
        await shard.snapshot(sid, [ticker])
        log.info("resync of %s requested: get_snapshot on shard %d sid %d", ticker, shard.number,
                 sid)  # fmt: skip
        return 200, {"ticker": ticker, "shard": shard.number, "sid": sid, "requested": True}

    # ---- run --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Capture until `stop` is set (or stop() is called); then drain and return.

        Raises the error that ended it (AuthenticationError, ConfigError) when not stopped.
        """
        s = self.settings

        def nats_state(state: str) -> None:
            if state == "disconnected":
                self.metrics.errors.labels(s.feed, "nats_disconnected").inc()

        name = f"ssmd-connector-{s.env}"
        if s.shard_group is not None:
            name += f"-{s.shard_group.spool_name}"
        self.nc = nc = await connect(s.nats.url, name, on_state=nats_state)
        try:
            check_frame_room(s.max_frame_bytes, nc.max_payload, s.nats.url)
            js = nc.jetstream()
            self.metrics.stream.update(await ensure_stream(js, s.nats))
            self._spawn(self.metrics.stream.poll(js, STREAM_POLL_INTERVAL))
            publisher = self.publisher = self.new_publisher(f"{name}-publisher")
            await publisher.start()
            if s.health_port is not None:
                health = HealthServer(
                    self.health,
                    self.metrics.registry,
                    s.health_host,
                    s.health_port,
                    actions={"/control/resync": self.resync_market},
                )
                await health.start()
                self.health_server = health  # set once it listens: its port is known
            selection = self.venue.selection(
                s.symbols, s.rest_url, s.credentials, s.clock, s.stored_markets, s.shard_group
            )
            tracking = self.tracking = Tracking(
                selection,
                self.shards,
                sync_interval=s.sync_interval,
                sweep_interval=s.sweep_interval,
                on_refresh_error=lambda: self.count_error("selection_refresh"),
                retry_base=s.backoff_base,
                retry_cap=s.backoff_cap,
            )
            if self.follows_lifecycle:
                await nc.subscribe(subjects.under(self.prefix, "lifecycle"), cb=tracking.follow)
            pump = asyncio.create_task(self._pump(), name="pump")
            self._watch(pump)
            heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
            self._watch(heartbeat)
            self._bg.add(heartbeat)  # cancelled on the way out, whatever ends the run
            self.shards.start_global()
            await tracking.start()
            sel_task = asyncio.create_task(tracking.run(), name="selection")
            self._watch(sel_task)
            waiter = asyncio.create_task(self._stop.wait())
            outer = asyncio.create_task(stop.wait()) if stop is not None else None
            await asyncio.wait(
                [t for t in (waiter, outer) if t], return_when=asyncio.FIRST_COMPLETED
            )
            for t in (waiter, outer, sel_task):
                if t is not None:
                    t.cancel()
            await self._shutdown(pump, heartbeat)
        finally:
            for t in self._bg:
                t.cancel()
            if publisher is not None:
                await publisher.close()
            if self.health_server is not None:
                await self.health_server.stop()
            if self.tracking is not None:
                await self.tracking.aclose()
            self.queue.close()
            with contextlib.suppress(Exception):
                await nc.close()
        if self._fatal is not None:
            raise self._fatal

    async def _shutdown(self, pump: asyncio.Task[Any], heartbeat: asyncio.Task[Any]) -> None:
        """Say `stopped`, stop reading (each shard says `disconnected`), then publish what is
        buffered, within drain_timeout."""
        s = self.settings
        heartbeat.cancel()
        # Capture ends here: the data has a gap from now until the next run connects.
        why = "stop requested" if self._fatal is None else f"failed: {self._fatal}"
        self.event("stopped", None, why, conn_id=self.run_id)
        await self.shards.stop()
        deadline = time.monotonic() + s.drain_timeout
        while not self.queue.empty() and not pump.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert self.publisher is not None
        left = max(0.0, deadline - time.monotonic())
        flushed = await self.publisher.flush(left)
        await cancel_and_wait(pump)
        log.info(
            "connector stopped",
            extra={
                "fields": {
                    "frames_received": self.frames_in,
                    "frames_published": self.frames_acked,
                    "unacked": self.publisher.inflight,
                    "queued_bytes": self.queue.memory_used + self.queue.spool_used,
                }
            },
        )
        if not (flushed and self.queue.empty()):
            log.error(
                "shutdown: %d unacked messages and %d queued bytes left (kept in the spool: %s)",
                self.publisher.inflight,
                self.queue.memory_used + self.queue.spool_used,
                s.spool_path,
            )
