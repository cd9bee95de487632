"""Kalshi as a venue (ssmd.venues.base): its session, subscription protocol, Rust codec,
market selection, credentials and market sync."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ssmd import core
from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Batch, Liveness, Venue
from ssmd.venues.kalshi.subscriptions import KalshiSubscriptions
from ssmd.venues.kalshi.ws import Session

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment
    from ssmd.config.models.environment import Symbols
    from ssmd.connector.groups import ShardGroup
    from ssmd.connector.selection import Selection
    from ssmd.secmaster.sync import SyncReport, SyncRun

__all__ = ["VENUE", "KalshiCodec"]

# Retries of one request of a selection refresh: a refresh that fails is read again by
# the tracking loop after a backoff, and is reported meanwhile (ssmd.connector.tracking),
# so it gives up quickly rather than retrying alone for a minute.
SELECTION_REST_RETRIES = 3


def _session(
    url: str,
    credentials: Any,
    on_frames: Callable[[list[bytes], int], None],
    *,
    liveness: Liveness = DEFAULT_LIVENESS,
    on_stream_error: Callable[[int, int, str], None] | None = None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> Session:
    return Session(
        url,
        credentials,
        on_frames,
        liveness=liveness,
        on_sid_error=on_stream_error,
        max_frame_bytes=max_frame_bytes,
    )


class KalshiCodec:
    """normalize_kalshi, with the books (BookSet: seqs per sid) and the trade and lifecycle
    sequences (SeqTracker) of every connection."""

    frame_kinds: tuple[str, ...] = core.FRAME_KINDS

    def __init__(self) -> None:
        self.books = core.BookSet()
        self.seq = core.SeqTracker()

    def normalize(self, frames: list[bytes], receive_ns: list[int], conn_id: int) -> Batch:
        batch: Batch = core.normalize_kalshi(frames, receive_ns, conn_id)
        return batch

    def integrity(self, batch: Batch) -> Sequence[core.BookEvent]:
        assert isinstance(batch, core.NormalizedBatch)
        return self.books.apply_batch(batch)

    def sequence(self, batch: Batch) -> Sequence[core.SeqEvent]:
        assert isinstance(batch, core.NormalizedBatch)
        return self.seq.observe_batch(batch)

    def checkpoint(self, now_ns: int, everything: bool) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = self.books.checkpoint(now_ns, everything)
        return out

    def forget(self, conn_id: int) -> None:
        self.seq.forget_connection(conn_id)
        self.books.close_connection(conn_id)


def _selection(
    symbols: Symbols,
    rest_url: str,
    credentials: Any,
    clock: Callable[[], float],
    stored: Callable[[], Iterable[dict[str, Any]]] | None,
    group: ShardGroup | None,
) -> Selection:
    from ssmd.connector.selection import Selection
    from ssmd.venues.kalshi.rest import RestClient

    rest = None
    if stored is None and (symbols.series or symbols.categories or symbols.tickers):
        rest = RestClient(rest_url, credentials, max_retries=SELECTION_REST_RETRIES)
    return Selection(symbols, rest, clock, stored=stored, group=group)


def _credentials(env: ResolvedEnvironment) -> Any:
    from ssmd.connector.runner import load_credentials

    return load_credentials(env)


async def _sync_markets(run: SyncRun) -> SyncReport:
    from ssmd.secmaster.sync import sync_kalshi

    return await sync_kalshi(run)


VENUE = Venue(
    name="kalshi",
    session=_session,
    subscriptions=KalshiSubscriptions,
    codec=KalshiCodec,
    selection=_selection,
    credentials=_credentials,
    sync_markets=_sync_markets,
    global_channels=frozenset({"market_lifecycle_v2"}),
    lifecycle=True,
)
