"""The market store: the security master's writes and reads.

    store = Store.open("postgresql://ssmd@db/ssmd")      # or a path / sqlite:///path
    store = open_store(env)                               # env.database_url, else SQLite in env.data_dir
    store.migrate()                                       # numbered migrations, up; migrate(0) = all down

A Store is a connection (ssmd.secmaster.sql: SQLite or PostgreSQL, one SQL for both)
whose schema ssmd.secmaster.schema keeps. Writes go through `apply_series`,
`apply_events` and `apply_markets`, which diff the given rows against what is stored and
write only what changed: new rows, updated columns, one `market_history` row per changed
reference field, and (when a journal subject is given) one outbox entry per changed
object, all in one transaction. Nothing is written for an unchanged row, which is what
makes a repeated sync a no-op.

Reads stream (`markets()` yields rows in pages), so no caller has to hold the whole
universe in memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from ssmd.exceptions import ConfigError, StoreError
from ssmd.secmaster.model import (
    EVENT_FIELDS,
    MARKET_FIELDS,
    QUOTE_FIELDS,
    SERIES_FIELDS,
    Row,
    Value,
    now_iso,
    series_of_ticker,
)
from ssmd.secmaster.schema import Migrated
from ssmd.secmaster.status import TERMINAL_RANK

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment

__all__ = ["SQLITE_FILE", "Change", "Store", "open_store"]

log = logging.getLogger(__name__)

SQLITE_FILE: Final = "secmaster.sqlite3"
CHUNK: Final = 500  # keys per IN (...) query: far below SQLite's and PostgreSQL's limits

MARKET_COLUMNS: Final = ("ticker", *MARKET_FIELDS, *QUOTE_FIELDS, "first_seen_at", "updated_at")
SOURCES: Final = ("sync", "lifecycle", "sweep")


@dataclass
class Change:
    """What one write changed on one object (a market, event or series)."""

    kind: str  # market | event | series
    key: str
    created: bool
    fields: dict[str, tuple[Value, Value]]  # field -> (old, new)
    source: str
    at: str
    state: Row = field(default_factory=dict)  # the object's full state after the change

    def payload(self) -> dict[str, Any]:
        """The journal entry (docs/secmaster.md, "Journal")."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "action": "created" if self.created else "updated",
            "ticker": self.key,
            "source": self.source,
            "changed_at": self.at,
            "changes": {k: {"old": o, "new": n} for k, (o, n) in self.fields.items()},
        }
        if self.kind == "market":
            out["venue"] = self.state.get("venue", "kalshi")
            out["status"] = self.state.get("status")
            out["status_text"] = self.state.get("status_text")
            out["category"] = self.state.get("category")
            out["series_ticker"] = self.state.get("series_ticker")
            out["event_ticker"] = self.state.get("event_ticker")
        return out


Diff = dict[str, tuple[Value, Value]]


def _history_text(v: Value) -> str | None:
    return None if v is None else str(v)


class Store(Migrated):
    """The market store: its writes and reads, on a connection (ssmd.secmaster.sql) whose
    schema ssmd.secmaster.schema keeps. Not thread-safe; one per task."""

    def __init__(self, conn: Any, dialect: str, description: str) -> None:
        super().__init__(conn, dialect, description)
        self.regressions_ignored = 0

    # ---- writes -----------------------------------------------------------------------

    def _fetch(
        self,
        table: str,
        key: str,
        columns: Sequence[str],
        keys: Sequence[str],
        venue: str | None = None,
    ) -> dict[str, Row]:
        """Rows of `table` by `key` (of one venue's markets, given `venue`)."""
        out: dict[str, Row] = {}
        cols = ", ".join((key, *columns))
        of_venue = "" if venue is None else "venue = ? AND "
        for i in range(0, len(keys), CHUNK):
            part = keys[i : i + CHUNK]
            marks = ", ".join("?" * len(part))
            params = part if venue is None else [venue, *part]
            sql = f"SELECT {cols} FROM {table} WHERE {of_venue}{key} IN ({marks})"
            for r in self.query(sql, params):
                out[str(r[0])] = dict(zip(columns, r[1:], strict=True))
        return out

    def _write_rows(
        self,
        table: str,
        key: tuple[str, ...],
        inserts: list[Row],
        updates: list[Row],
        now: str,
    ) -> None:
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for row in inserts:
            cols = (*row.keys(), "first_seen_at", "updated_at")
            groups.setdefault(cols, []).append((*row.values(), now, now))
        for cols, vals in groups.items():
            self.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                vals,
            )
        ugroups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for row in updates:
            cols = tuple(k for k in row if k not in key)
            ugroups.setdefault(cols, []).append(
                (*(row[c] for c in cols), now, *(row[k] for k in key))
            )
        where = " AND ".join(f"{k} = ?" for k in key)
        for cols, vals in ugroups.items():
            sets = ", ".join(f"{c} = ?" for c in (*cols, "updated_at"))
            self.executemany(f"UPDATE {table} SET {sets} WHERE {where}", vals)

    def _outbox(self, changes: list[Change], subject: str | None) -> None:
        if subject is None or not changes:
            return
        rows = []
        for c in changes:
            body = orjson.dumps(c.payload(), option=orjson.OPT_SORT_KEYS)
            digest = hashlib.sha256(body).hexdigest()[:24]
            rows.append((subject, f"secmaster:{c.kind}:{c.key}:{digest}", body.decode(), c.at))
        self.executemany(
            "INSERT INTO secmaster_outbox (subject, msg_id, payload, created_at) VALUES (?, ?, ?, ?)",
            rows,
        )

    def _apply_simple(
        self,
        kind: str,
        table: str,
        key: str,
        fields: Sequence[str],
        rows: Iterable[Row],
        source: str,
        journal: str | None,
        now: str | None,
    ) -> list[Change]:
        now = now or now_iso()
        dedup: dict[str, Row] = {}
        for r in rows:
            dedup[str(r[key])] = r
        if not dedup:
            return []
        with self.transaction():
            existing = self._fetch(table, key, fields, list(dedup))
            inserts, updates, changes = [], [], []
            for k, row in dedup.items():
                old = existing.get(k)
                if old is None:
                    inserts.append(row)
                    diff: Diff = {f: (None, row[f]) for f in fields if row.get(f) is not None}
                    changes.append(Change(kind, k, True, diff, source, now, dict(row)))
                    continue
                diff = {f: (old[f], row[f]) for f in fields if f in row and row[f] != old[f]}
                if diff:
                    updates.append({key: k, **{f: row[f] for f in diff}})
                    changes.append(Change(kind, k, False, diff, source, now, {**old, **row}))
            self._write_rows(table, (key,), inserts, updates, now)
            self._outbox(changes, journal)
        return changes

    def apply_series(
        self,
        rows: Iterable[Row],
        source: str = "sync",
        journal: str | None = None,
        now: str | None = None,
    ) -> list[Change]:
        return self._apply_simple(
            "series", "series", "ticker", SERIES_FIELDS, rows, source, journal, now
        )

    def apply_events(
        self,
        rows: Iterable[Row],
        source: str = "sync",
        journal: str | None = None,
        now: str | None = None,
    ) -> list[Change]:
        return self._apply_simple(
            "event", "events", "event_ticker", EVENT_FIELDS, rows, source, journal, now
        )

    def apply_markets(
        self,
        rows: Iterable[Row],
        source: str = "sync",
        journal: str | None = None,
        now: str | None = None,
    ) -> list[Change]:
        """Upsert markets (full rows from REST, or partial rows from lifecycle events).

        A market is one venue's (its row's `venue`, Kalshi when absent): the same ticker
        at two venues is two markets. Keys absent from a row are left alone. A market
        already determined or settled is never moved back to an earlier status (REST lags
        the WebSocket around settlement). Returns the changes to reference fields; quote
        fields are updated silently.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        now = now or now_iso()
        by_venue: dict[str, dict[str, Row]] = {}
        for r in rows:
            venue = str(r.get("venue") or "kalshi")
            # a duplicate within a batch: the last one wins
            by_venue.setdefault(venue, {})[str(r["ticker"])] = {**r, "venue": venue}
        if not by_venue:
            return []
        with self.transaction():
            changes: list[Change] = []
            for venue, dedup in by_venue.items():
                changes += self._apply_venue_markets(venue, dedup, source, now)
            self._outbox(changes, journal)
        return changes

    def _apply_venue_markets(
        self, venue: str, dedup: dict[str, Row], source: str, now: str
    ) -> list[Change]:
        """apply_markets for the rows of one venue, by ticker, in the caller's transaction."""
        columns = (*MARKET_FIELDS, *QUOTE_FIELDS)
        existing = self._fetch("markets", "ticker", columns, list(dedup), venue)
        inserts: list[Row] = []
        updates: list[Row] = []
        changes: list[Change] = []
        history: list[tuple[Any, ...]] = []
        for t, row in dedup.items():
            old = existing.get(t)
            if old is None:
                new = dict(row)
                new.setdefault("status", "unknown")
                if not new.get("series_ticker") and venue == "kalshi":
                    new["series_ticker"] = series_of_ticker(t)
                inserts.append(new)
                history.append(
                    (venue, t, "status", None, _history_text(new["status"]), now, source)
                )
                diff: Diff = {f: (None, new[f]) for f in MARKET_FIELDS if new.get(f) is not None}
                changes.append(Change("market", t, True, diff, source, now, new))
                continue
            new = {k: v for k, v in row.items() if k in columns}
            if "status" in new and new["status"] != old["status"]:
                was = TERMINAL_RANK.get(str(old["status"]), -1)
                now_rank = TERMINAL_RANK.get(str(new["status"]), -1)
                if was >= TERMINAL_RANK["determined"] and 0 <= now_rank < was:
                    self.regressions_ignored += 1
                    log.info("%s: %s says %s, keeping %s", t, source, new["status"], old["status"])
                    new.pop("status")
                    new.pop("status_text", None)
            diff = {f: (old[f], new[f]) for f in MARKET_FIELDS if f in new and new[f] != old[f]}
            quotes = [f for f in QUOTE_FIELDS if f in new and new[f] != old[f]]
            if not diff and not quotes:
                continue
            new.pop("venue", None)
            updates.append({"venue": venue, "ticker": t, **{f: new[f] for f in (*diff, *quotes)}})
            if diff:
                for f, (o, n) in diff.items():
                    history.append((venue, t, f, _history_text(o), _history_text(n), now, source))
                changes.append(Change("market", t, False, diff, source, now, {**old, **new}))
        self._write_rows("markets", ("venue", "ticker"), inserts, updates, now)
        self.executemany(
            "INSERT INTO market_history "
            "(venue, ticker, field, old_value, new_value, changed_at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            history,
        )
        return changes

    # ---- reads ------------------------------------------------------------------------

    def market(self, ticker: str, venue: str) -> Row | None:
        rows = self.query(
            f"SELECT {', '.join(MARKET_COLUMNS)} FROM markets WHERE venue = ? AND ticker = ?",
            (venue, ticker),
        )
        return dict(zip(MARKET_COLUMNS, rows[0], strict=True)) if rows else None

    def markets(
        self,
        *,
        statuses: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        series: Iterable[str] | None = None,
        tickers: Iterable[str] | None = None,
        search: str | None = None,
        limit: int | None = None,
        venue: str | None = None,
    ) -> Iterator[Row]:
        """Markets matching every filter given (each filter: any of its values), by ticker.

        With several of `categories`, `series` and `tickers`, a market matches when it is in
        any of them (the environment's selection is a union); `statuses`, `search` and
        `venue` narrow that down.
        """
        where: list[str] = []
        params: list[Any] = []
        if venue is not None:
            where.append("venue = ?")
            params.append(venue)
        anyof: list[str] = []
        for col, values in (
            ("category", categories),
            ("series_ticker", series),
            ("ticker", tickers),
        ):
            vals = sorted(set(values or ()))
            if vals:
                anyof.append(f"{col} IN ({', '.join('?' * len(vals))})")
                params.extend(vals)
        if anyof:
            where.append("(" + " OR ".join(anyof) + ")")
        st = sorted(set(statuses or ()))
        if st:
            where.append(f"status IN ({', '.join('?' * len(st))})")
            params.extend(st)
        if search:
            where.append(
                "(LOWER(ticker) LIKE ? OR LOWER(title) LIKE ? OR LOWER(yes_sub_title) LIKE ?)"
            )
            pat = f"%{search.lower()}%"
            params.extend([pat, pat, pat])
        sql = f"SELECT {', '.join(MARKET_COLUMNS)} FROM markets"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ticker"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for r in self.stream(sql, params):
            yield dict(zip(MARKET_COLUMNS, r, strict=True))

    def history(self, ticker: str, venue: str) -> list[Row]:
        cols = ("id", "venue", "ticker", "field", "old_value", "new_value", "changed_at", "source")
        rows = self.query(
            f"SELECT {', '.join(cols)} FROM market_history WHERE venue = ? AND ticker = ? "
            "ORDER BY id",
            (venue, ticker),
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def count(self, table: str) -> int:
        if table not in ("markets", "events", "series", "market_history", "secmaster_outbox"):
            raise ValueError(table)
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def series_categories(self, tickers: Sequence[str]) -> dict[str, str | None]:
        got = self._fetch("series", "ticker", ("category",), sorted(set(tickers)))
        return {k: (None if v["category"] is None else str(v["category"])) for k, v in got.items()}

    def event_series(self, event_tickers: Sequence[str]) -> dict[str, str | None]:
        got = self._fetch("events", "event_ticker", ("series_ticker",), sorted(set(event_tickers)))
        return {
            k: (None if v["series_ticker"] is None else str(v["series_ticker"]))
            for k, v in got.items()
        }

    def event(self, event_ticker: str) -> Row | None:
        got = self._fetch("events", "event_ticker", EVENT_FIELDS, [event_ticker])
        return got.get(event_ticker)

    def series_row(self, ticker: str) -> Row | None:
        got = self._fetch("series", "ticker", SERIES_FIELDS, [ticker])
        return got.get(ticker)

    def due_transitions(
        self, now: str, venue: str, limit: int = 1000
    ) -> list[tuple[str, str, str | None, str | None]]:
        """(ticker, status, open_time, close_time) of the venue's markets the clock has
        moved on: initialized with open_time <= now, or open/halted with close_time <= now."""
        rows = self.query(
            "SELECT ticker, status, open_time, close_time FROM markets WHERE venue = ? AND "
            "((status = 'initialized' AND open_time IS NOT NULL AND open_time <= ?) OR "
            "(status IN ('open', 'halted') AND close_time IS NOT NULL AND close_time <= ?)) "
            f"ORDER BY ticker LIMIT {int(limit)}",
            (venue, now, now),
        )
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    # ---- journal outbox ---------------------------------------------------------------

    def outbox(self, limit: int = 500) -> list[tuple[int, str, str, bytes]]:
        rows = self.query(
            f"SELECT id, subject, msg_id, payload FROM secmaster_outbox ORDER BY id LIMIT {int(limit)}"
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]).encode()) for r in rows]

    def outbox_done(self, ids: Sequence[int]) -> None:
        with self.transaction():
            for i in range(0, len(ids), CHUNK):
                part = list(ids[i : i + CHUNK])
                self.execute(
                    f"DELETE FROM secmaster_outbox WHERE id IN ({', '.join('?' * len(part))})", part
                )

    def outbox_expire(self, before: str) -> int:
        """Drop outbox entries of changes made before `before` (ISO time); how many."""
        with self.transaction():
            cur = self.execute("DELETE FROM secmaster_outbox WHERE created_at < ?", (before,))
            return int(cur.rowcount)

    # ---- sync bookkeeping -------------------------------------------------------------

    @contextmanager
    def seen_set(self) -> Iterator[SeenSet]:
        """A temporary table of tickers seen by one sync run (bounded memory)."""
        name = "secmaster_seen"
        self.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (ticker TEXT PRIMARY KEY)")
        self.execute(f"DELETE FROM {name}")
        try:
            yield SeenSet(self, name)
        finally:
            self.execute(f"DROP TABLE IF EXISTS {name}")


class SeenSet:
    def __init__(self, store: Store, table: str) -> None:
        self.store, self.table = store, table

    def add(self, tickers: Iterable[str]) -> None:
        rows = [(t,) for t in set(tickers)]
        conflict = "ON CONFLICT (ticker) DO NOTHING"
        with self.store.transaction():
            self.store.executemany(f"INSERT INTO {self.table} (ticker) VALUES (?) {conflict}", rows)

    def unseen_markets(
        self,
        venue: str,
        statuses: Iterable[str],
        series: Iterable[str] | None = None,
        page: int = 100,
    ) -> Iterator[list[str]]:
        """The venue's stored markets in `statuses` (and `series`, when given) this run did
        not see, `page` tickers at a time (keyset pagination: the caller may write in
        between)."""
        st = sorted(set(statuses))
        sr = sorted(set(series or ()))
        after = ""
        while True:
            params: list[Any] = [venue, after, *st]
            sql = (
                f"SELECT ticker FROM markets WHERE venue = ? AND ticker > ? "
                f"AND status IN ({', '.join('?' * len(st))}) "
                f"AND ticker NOT IN (SELECT ticker FROM {self.table})"
            )
            if sr:
                sql += f" AND series_ticker IN ({', '.join('?' * len(sr))})"
                params.extend(sr)
            rows = self.store.query(sql + f" ORDER BY ticker LIMIT {int(page)}", params)
            if not rows:
                return
            tickers = [str(r[0]) for r in rows]
            yield tickers
            after = tickers[-1]


def open_store(env: ResolvedEnvironment, *, migrate: bool = True) -> Store:
    """The environment's store: `database_url` (PostgreSQL) when set, else SQLite under the
    data dir (`<data dir>/secmaster.sqlite3`). Migrates to the latest version unless told not to."""
    try:
        store = (
            Store.open(env.database_url)
            if env.database_url
            else Store.open(env.data_dir / SQLITE_FILE)
        )
    except StoreError as exc:
        raise ConfigError(f"environment {env.name}: {exc}") from None
    if migrate:
        store.migrate()
    else:
        store.check_schema()
    return store
