"""The archive as a dataset: `scan` and `raw` (Polars LazyFrames over any date range),
`book_at` and `top_of_book` (point-in-time books), the export to Parquet
(`ssmd data export`) and the inventory (ssmd.data.inventory). Needs Polars
(`pip install 'ssmd[data]'`); the inventory alone does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmd.data.query import raw, scan

__all__ = ["raw", "scan"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `ssmd.data.inventory` works without Polars.
    if name in ("scan", "raw"):
        import importlib

        return getattr(importlib.import_module("ssmd.data.query"), name)
    raise AttributeError(f"module 'ssmd.data' has no attribute {name!r}")
