"""What the archive holds after a run, per feed and data type, from the manifests
(ssmd.data.inventory).

A raw file is sealed after its hour closes and a normalized file after its UTC day
closes (plus the archiver's grace), so after a short run most records are still in
the archiver's durable spool: the report says how many, rather than implying they
are missing or already in files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["ArchiveReport", "archive_report"]


@dataclass
class ArchiveReport:
    rows: list[dict[str, Any]]  # one per feed and data type over the days covered
    days: list[str]
    added: int  # records (sealed + spooled) more than before this run

    @property
    def sealed_records(self) -> int:
        return sum(r["sealed_records"] for r in self.rows)

    @property
    def spooled_records(self) -> int:
        return sum(r["spooled_records"] for r in self.rows)

    @property
    def files(self) -> int:
        return sum(r["files"] for r in self.rows)

    @property
    def bytes(self) -> int:
        return sum(r["bytes"] for r in self.rows)

    def summary(self) -> str:
        total = self.sealed_records + self.spooled_records
        return (
            f"{total:,} records archived ({self.added:+,} this run): "
            f"{self.sealed_records:,} in {self.files:,} sealed files ({self.bytes:,} bytes), "
            f"{self.spooled_records:,} spooled until their hour (raw) or UTC day "
            "(normalized) closes, then sealed into files (at the next start if nothing "
            "runs then)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "records": self.sealed_records + self.spooled_records,
            "added": self.added,
            "sealed_records": self.sealed_records,
            "spooled_records": self.spooled_records,
            "files": self.files,
            "bytes": self.bytes,
            "by_data_type": self.rows,
        }

    @property
    def feeds(self) -> list[str]:
        """The feeds archived, in the order of the rows."""
        return list(dict.fromkeys(r["feed"] for r in self.rows))


def _totals(inventory: list[dict[str, Any]]) -> int:
    return sum(int(r["records"]) + int(r.get("pending_records") or 0) for r in inventory)


def archive_report(
    archive: Any, start: date, end: date, before: list[dict[str, Any]] | None = None
) -> ArchiveReport:
    """Per feed and data type over the days `start`..`end` (an ssmd.data.inventory.Archive).

    `before`: the inventory of the same days taken before the run, for the increase.
    """
    inventory = archive.inventory(None, start, end)
    by_type: dict[tuple[str, str], dict[str, Any]] = {}
    days: set[str] = set()
    for r in inventory:
        days.add(r["date"])
        row = by_type.setdefault(
            (r["feed"], r["data_type"]),
            {
                "feed": r["feed"],
                "data_type": r["data_type"],
                "sealed_records": 0,
                "files": 0,
                "bytes": 0,
                "spooled_records": 0,
            },
        )
        row["sealed_records"] += int(r["records"])
        row["files"] += int(r["files"])
        row["bytes"] += int(r["bytes"])
        row["spooled_records"] += int(r.get("pending_records") or 0)
    rows = sorted(
        by_type.values(), key=lambda x: (x["feed"], x["data_type"] != "raw", x["data_type"])
    )
    return ArchiveReport(rows, sorted(days), _totals(inventory) - _totals(before or []))
