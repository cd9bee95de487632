"""Trading days: one record per day the system ran, in the secmaster's database.

    id             {env}:{date} (a second day on the same date: {env}:{date}#2, ...)
    trading_date   the date in the schedule's time zone when the day started
    state          started -> ending -> ended | failed (the verification found problems)
    started_at, ended_at, first_seq (the stream's first sequence of the day),
    records, bytes, gaps, quality_score, verification (JSON)

An environment that captures several venues has a stream per feed: `first_seq` is
its own feed's, and each further venue's is a row of `trading_day_venues`
(day_id, feed, first_seq), written with the day.

The table `trading_days` lives in the secmaster's database (SQLite by default,
PostgreSQL when the environment names one: ssmd.secmaster.db.open_store) and is
created on first use; it belongs to the operations layer, so it is not one of the
secmaster's numbered migrations. Each change is
published to the journal (`{env}.journal.day`, with a Nats-Msg-Id of the day and
its state, so a retried activity publishes nothing twice) and, when the environment
has Redis, the current day is the hash `{env}:ops:day`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ssmd.secmaster.db import Store
from ssmd.secmaster.model import now_iso

__all__ = ["COLUMNS", "Days", "publish", "redis_key"]

COLUMNS: Final = (
    "id",
    "env",
    "trading_date",
    "state",
    "started_at",
    "ended_at",
    "opened_by",
    "first_seq",
    "records",
    "bytes",
    "gaps",
    "quality_score",
    "verification",
    "updated_at",
)
OPEN_STATES: Final = ("started", "ending")
DDL: Final = (
    "CREATE TABLE IF NOT EXISTS trading_days ("
    "id TEXT PRIMARY KEY, env TEXT NOT NULL, trading_date TEXT NOT NULL, "
    "state TEXT NOT NULL, started_at TEXT, ended_at TEXT, opened_by TEXT, "
    "first_seq BIGINT, records BIGINT, bytes BIGINT, gaps INTEGER, "
    "quality_score DOUBLE PRECISION, verification TEXT, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS trading_days_env_date ON trading_days (env, trading_date)",
    "CREATE TABLE IF NOT EXISTS trading_day_venues ("
    "day_id TEXT NOT NULL, feed TEXT NOT NULL, first_seq BIGINT NOT NULL, "
    "PRIMARY KEY (day_id, feed))",
)


def redis_key(env: str) -> str:
    return f"{env}:ops:day"


class Days:
    def __init__(self, store: Store, env: str) -> None:
        self.store, self.env = store, env
        with store.transaction():
            for statement in DDL:
                store.execute(statement)

    def _rows(self, where: str, params: tuple[Any, ...], tail: str = "") -> list[dict[str, Any]]:
        rows = self.store.query(
            f"SELECT {', '.join(COLUMNS)} FROM trading_days WHERE env = ? {where} {tail}",
            (self.env, *params),
        )
        out = []
        for r in rows:
            row = dict(zip(COLUMNS, r, strict=True))
            if row["verification"]:
                row["verification"] = json.loads(row["verification"])
            out.append(row)
        return out

    def get(self, day_id: str) -> dict[str, Any] | None:
        found = self._rows("AND id = ?", (day_id,))
        return found[0] if found else None

    def current(self) -> dict[str, Any] | None:
        """The newest day not ended yet."""
        found = self._rows(
            "AND state IN (?, ?)", OPEN_STATES, "ORDER BY started_at DESC, id DESC LIMIT 1"
        )
        return found[0] if found else None

    def history(self, limit: int = 30) -> list[dict[str, Any]]:
        return self._rows("", (), f"ORDER BY started_at DESC, id DESC LIMIT {int(limit)}")

    def venue_seqs(self, day_id: str) -> dict[str, int]:
        """Each further venue's first stream sequence of the day."""
        rows = self.store.query(
            "SELECT feed, first_seq FROM trading_day_venues WHERE day_id = ?", (day_id,)
        )
        return {str(feed): int(seq) for feed, seq in rows}

    def open(
        self,
        trading_date: str,
        opened_by: str,
        first_seq: int,
        venue_seqs: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """The day `opened_by` (a workflow run) started; created on its first call only,
        so a retried startup finds its day again. An open day of another run is kept:
        a startup while a day runs continues it. `venue_seqs`: each further venue's
        first stream sequence."""
        with self.store.transaction():
            mine = self._rows("AND opened_by = ?", (opened_by,))
            if mine:
                return mine[0]
            running = self.current()
            if running is not None:
                return running
            taken = self._rows("AND trading_date = ?", (trading_date,))
            day_id = f"{self.env}:{trading_date}" + (f"#{len(taken) + 1}" if taken else "")
            now = now_iso()
            self.store.execute(
                "INSERT INTO trading_days (id, env, trading_date, state, started_at, opened_by, "
                "first_seq, updated_at) VALUES (?, ?, ?, 'started', ?, ?, ?, ?)",
                (day_id, self.env, trading_date, now, opened_by, first_seq, now),
            )
            for feed, seq in sorted((venue_seqs or {}).items()):
                self.store.execute(
                    "INSERT INTO trading_day_venues (day_id, feed, first_seq) VALUES (?, ?, ?)",
                    (day_id, feed, seq),
                )
        day = self.get(day_id)
        assert day is not None
        return day

    def update(self, day_id: str, **fields: Any) -> dict[str, Any]:
        unknown = set(fields) - set(COLUMNS[3:-1])
        if unknown:
            raise ValueError(f"not a trading day field: {sorted(unknown)}")
        if "verification" in fields and fields["verification"] is not None:
            fields["verification"] = json.dumps(fields["verification"], sort_keys=True)
        sets = ", ".join(f"{k} = ?" for k in (*fields, "updated_at"))
        with self.store.transaction():
            self.store.execute(
                f"UPDATE trading_days SET {sets} WHERE id = ? AND env = ?",
                (*fields.values(), now_iso(), day_id, self.env),
            )
        day = self.get(day_id)
        if day is None:
            raise KeyError(f"no trading day {day_id} in environment {self.env}")
        return day


async def publish(js: Any, env: str, day: dict[str, Any]) -> None:
    """The day as it is now, to `{env}.journal.day` (deduplicated by day and state)."""
    import orjson

    from ssmd.secmaster.journal import MSG_ID, Journal, journal_subject

    await Journal(js, env).ensure_stream()  # the stream covers {env}.journal.>
    await js.publish(
        journal_subject(env, "day"),
        orjson.dumps({"kind": "trading_day", **day}, option=orjson.OPT_SORT_KEYS),
        headers={MSG_ID: f"day:{day['id']}:{day['state']}"},
    )


async def cache(redis_url: str, env: str, day: dict[str, Any]) -> None:
    """The current day in Redis, as a hash of its fields (JSON values)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        mapping: dict[Any, Any] = {k: json.dumps(v) for k, v in day.items()}
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(redis_key(env))
            pipe.hset(redis_key(env), mapping=mapping)
            await pipe.execute()
    finally:
        await client.aclose()
