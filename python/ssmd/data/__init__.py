"""The archive as a dataset: `scan` and `raw` (Polars LazyFrames over any date range),
`book_at` and `top_of_book` (point-in-time books), the export to Parquet
(`ssmd data export`) and the inventory (ssmd.data.inventory). Needs Polars
(`pip install 'ssmd[data]'`); the inventory alone does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmd.data.books import book_at, top_of_book
    from ssmd.data.query import days, raw, scan
    from ssmd.data.source import Dataset

__all__ = ["Dataset", "book_at", "days", "raw", "scan", "top_of_book"]

_HOMES = {
    "Dataset": "ssmd.data.source",
    "days": "ssmd.data.query",
    "scan": "ssmd.data.query",
    "raw": "ssmd.data.query",
    "book_at": "ssmd.data.books",
    "top_of_book": "ssmd.data.books",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `ssmd.data.inventory` works without Polars.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'ssmd.data' has no attribute {name!r}")
