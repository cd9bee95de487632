"""What the archive holds, from manifests only: inventory, gaps and quality per day.

from ssmd.data.inventory import Archive
arc = Archive.from_environment(load_environment("kalshi-sim"))
arc.inventory(feed="kalshi", start=date(2026, 7, 20), end=date(2026, 7, 21))
arc.gaps("kalshi", date(2026, 7, 20)); arc.quality("kalshi", date(2026, 7, 20))
arc.read_normalized("kalshi", "trade", date(2026, 7, 20))   # Polars, via ssmd.records
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ssmd import core
from ssmd.archiver.spool import spool_dir
from ssmd.records import archive_ticker
from ssmd.store import keys
from ssmd.store.base import ObjectStore, open_store

if TYPE_CHECKING:
    import polars

__all__ = ["Archive"]

_TABLE_KIND = {
    "trade": "trade",
    "ticker": "ticker",
    "lifecycle": "lifecycle",
    "orderbook": "book_delta",
}


@dataclass
class Archive:
    env: str
    raw_store: ObjectStore
    normalized_store: ObjectStore
    spool_dir: Path | None = None  # the archiver's spool: unsealed data of open days
    # The spools of the further venues the environment captures (spec.venues), by feed.
    venue_spools: Mapping[str, Path] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: Any) -> Archive:
        return cls(
            env.name,
            open_store(env.raw_store),
            open_store(env.normalized_store),
            spool_dir(env.data_dir, env.name),
            {feed: spool_dir(env.data_dir, env.name, feed) for feed in env.feeds[1:]},
        )

    def spool_of(self, feed: str) -> Path | None:
        """The spool holding `feed`'s unsealed data."""
        return self.venue_spools.get(feed, self.spool_dir)

    def manifests(
        self, feed: str | None = None, start: date | None = None, end: date | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every manifest of the environment (optionally one feed, dates start..end)."""
        prefix = f"{self.env}/" + (f"{feed}/" if feed else "")
        for store in (self.raw_store, self.normalized_store):
            for obj in store.list(prefix):
                if not obj.key.endswith("/manifest.json"):
                    continue
                info = keys.parse_key(obj.key)
                if info is None or info.kind != "manifest":
                    continue
                if (start and info.day < start) or (end and info.day > end):
                    continue
                try:
                    data: dict[str, Any] = orjson.loads(store.get(obj.key))
                except (FileNotFoundError, orjson.JSONDecodeError):
                    continue
                yield data

    def inventory(
        self, feed: str | None = None, start: date | None = None, end: date | None = None
    ) -> list[dict[str, Any]]:
        rows = [
            {
                "date": m["date"],
                "feed": m["feed"],
                "data_type": m["data_type"],
                "records": m["record_count"],
                "bytes": m["byte_size"],
                "files": len(m.get("files", [])),
                "markets": m.get("markets", 0),
                "status": m["status"],
                "gaps": len(m.get("gaps", [])),
                "quality_score": m.get("quality_score"),
                "pending_records": (m.get("pending") or {}).get("records", 0),
            }
            for m in self.manifests(feed, start, end)
        ]
        rows.sort(key=lambda r: (r["date"], r["feed"], r["data_type"] != "raw", r["data_type"]))
        return rows

    def _day_manifests(self, feed: str, day: date) -> list[dict[str, Any]]:
        return list(self.manifests(feed, day, day))

    @staticmethod
    def _newest_gaps(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The gaps of the newest of the archiver's manifests (every one lists the day's
        gaps), each backfilled one marked with what `ssmd data backfill` added."""
        live = [m for m in found if m.get("source") != keys.REST_BACKFILL_SOURCE]
        if not live:
            return []
        newest = max(live, key=lambda m: m.get("created_at", ""))
        done = {
            (b["start_ns"], b["reason"]): b
            for m in found
            if m.get("source") == keys.REST_BACKFILL_SOURCE
            for b in m.get("backfilled_gaps", [])
        }
        gaps: list[dict[str, Any]] = []
        for gap in newest.get("gaps", []):
            filled = done.get((gap.get("start_ns"), gap.get("reason")))
            if filled is not None:
                gap = gap | {
                    "backfilled": {
                        k: filled[k] for k in ("source", "to", "trades", "at") if k in filled
                    }
                }
            gaps.append(gap)
        return gaps

    def gaps(self, feed: str, day: date) -> list[dict[str, Any]]:
        """The day's gaps (the same in every manifest of the day; the newest wins),
        those whose trades were backfilled marked `backfilled`."""
        return self._newest_gaps(self._day_manifests(feed, day))

    def quality(self, feed: str, day: date) -> dict[str, Any]:
        found = self._day_manifests(feed, day)
        if not found:
            return {"feed": feed, "date": day.isoformat(), "found": False}
        live = [m for m in found if m.get("source") != keys.REST_BACKFILL_SOURCE] or found
        newest = max(live, key=lambda m: m.get("created_at", ""))
        gaps = self._newest_gaps(found)
        by_reason: dict[str, float] = {}
        for g in gaps:
            by_reason[g["reason"]] = by_reason.get(g["reason"], 0.0) + float(g["duration_s"])
        return {
            "feed": feed,
            "date": day.isoformat(),
            "found": True,
            "quality_score": newest.get("quality_score"),
            "status": "sealed" if all(m["status"] == "sealed" for m in found) else "open",
            "gaps": len(gaps),
            "gaps_backfilled": sum("backfilled" in g for g in gaps),
            "gap_seconds_by_reason": by_reason,
            "records_by_data_type": {m["data_type"]: m["record_count"] for m in found},
            "malformed_frames": sum(m.get("malformed_frames", 0) for m in found),
            "undecodable_records": sum(m.get("undecodable_records", 0) for m in found),
            "quarantined": sum(m.get("quarantined_count", 0) for m in found),
            "markets": max((m.get("markets", 0) for m in found), default=0),
        }

    def normalized_files(
        self, feed: str, record_type: str, day: date, include_spool: bool = True
    ) -> Iterator[tuple[str, bytes]]:
        """(ticker, packed records) per file of a day: sealed objects, then the spool."""
        for info, archive, _sealed in self._normalized_archives(
            feed, record_type, day, include_spool
        ):
            ticker = info.ticker
            if ticker is None:  # a hashed segment (a long ticker): the records have it
                ticker = archive_ticker([archive]) or ""
            yield ticker, core.read_archive(archive).data

    def _normalized_archives(
        self, feed: str, record_type: str, day: date, include_spool: bool
    ) -> Iterator[tuple[keys.KeyInfo, bytes, bool]]:
        """(key info, zstd archive, sealed) per file of a day: sealed objects, then the
        spool (listed by ssmd.data.source, the one reader of archive files)."""
        from ssmd.data.source import Dataset

        for f in Dataset(self, feed).normalized_files(record_type, day, include_open=include_spool):
            yield f.info, f.load(), f.sealed

    def read_normalized(
        self, feed: str, record_type: str, day: date, kind: str | None = None
    ) -> polars.DataFrame:
        """One day of one record type as a Polars frame (one file at a time in memory).

        A sealed file that ends inside a zstd frame raises ArchiveError (sealing
        writes whole files, so that is damage); a spool file being written may,
        and gives the records of its complete frames.
        """
        import polars as pl

        from ssmd.records import archive_to_polars

        table_kind = kind or _TABLE_KIND.get(record_type, record_type)
        frames = [
            archive_to_polars(archive, table_kind, allow_truncated_tail=not sealed)
            for _, archive, sealed in self._normalized_archives(feed, record_type, day, True)
        ]
        frames = [f for f in frames if f.height]
        return pl.concat(frames) if frames else pl.DataFrame()
