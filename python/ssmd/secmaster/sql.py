"""A connection to SQLite (the embedded default) or PostgreSQL, with one SQL for both:
`?` placeholders, rewritten to `%s` for psycopg. The security master's store
(ssmd.secmaster.db) and the other tables kept beside it (days, data issues) use it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ssmd.config.resolve import mask_url
from ssmd.exceptions import StoreError

__all__ = ["Database"]


class Database:
    """A connection. Not thread-safe; one per task."""

    def __init__(self, conn: Any, dialect: str, description: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self.description = description  # safe to log: passwords masked
        self._in_tx = False

    # ---- opening ----------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | Path) -> Self:
        """A PostgreSQL URL (postgres:// or postgresql://), sqlite:///path, or a file path."""
        text = str(target)
        if text.startswith(("postgres://", "postgresql://", "postgresql+")):
            import psycopg

            url = re.sub(r"^postgresql\+[a-z0-9]+://", "postgresql://", text)
            try:
                conn = psycopg.connect(url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot connect to {mask_url(text)}: {type(exc).__name__}"
                ) from None
            return cls(conn, "postgresql", mask_url(text))
        path = Path(text[len("sqlite:///") :] if text.startswith("sqlite:///") else text)
        path.parent.mkdir(parents=True, exist_ok=True)
        lite = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("PRAGMA synchronous=NORMAL")
        lite.execute("PRAGMA busy_timeout=10000")
        return cls(lite, "sqlite", f"sqlite:///{path}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- SQL helpers ------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; nested calls join the outer one."""
        if self._in_tx:
            yield
            return
        self._in_tx = True
        try:
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield
            else:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def stream(
        self, sql: str, params: Sequence[Any] = (), size: int = 1000
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of a query, fetched `size` at a time (a server-side cursor on PostgreSQL)."""
        if self.dialect == "postgresql":
            with self._conn.transaction(), self._conn.cursor(name="ssmd_stream") as cur:
                cur.itersize = size
                cur.execute(self._sql(sql), tuple(params))
                while True:
                    rows = cur.fetchmany(size)
                    if not rows:
                        return
                    yield from rows
        else:
            cur = self._conn.execute(sql, tuple(params))
            try:
                while True:
                    rows = cur.fetchmany(size)
                    if not rows:
                        return
                    yield from rows
            finally:
                cur.close()

    # ---- the catalogue ---------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        if self.dialect == "postgresql":
            rows = self.query(
                "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_schema = current_schema()",
                (name,),
            )
        else:
            rows = self.query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        return bool(rows)

    def tables(self) -> set[str]:
        if self.dialect == "postgresql":
            rows = self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        else:
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")}
