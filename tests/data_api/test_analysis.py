"""docs/analysis.md: its code blocks run, in order, against the captured simulator data,
and give what the data holds."""

from __future__ import annotations

import re
from typing import Any

import polars as pl
import pytest

from _support import ROOT
from _support.datafix import Capture

pytestmark = pytest.mark.xdist_group("data_api")

BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def test_the_worked_example_runs_and_is_right(
    captured: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSMD_DATA_DIR", str(captured.data_dir))
    monkeypatch.setenv("SSMD_CONFIG_DIR", str(ROOT / "exchanges"))
    blocks = BLOCK.findall((ROOT / "docs" / "analysis.md").read_text())
    assert len(blocks) == 4
    scope: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "docs/analysis.md", "exec"), scope)

    trades = scope["trades"].collect()
    hourly: pl.DataFrame = scope["hourly"]
    assert hourly["trades"].sum() == trades.height > 0
    assert hourly["volume_e6"].sum() == trades["size_e6"].sum()
    bounds = trades.group_by("ticker").agg(lo=pl.col("price_e6").min(), hi=pl.col("price_e6").max())
    checked = hourly.join(bounds, on="ticker")
    assert ((checked["vwap_e6"] >= checked["lo"]) & (checked["vwap_e6"] <= checked["hi"])).all()

    spread: pl.DataFrame = scope["spread"]
    assert spread.height > 0 and (spread["spread_e6"] > 0).all()

    joined: pl.DataFrame = scope["joined"]
    busiest = scope["busiest"]
    assert joined.height == trades.filter(pl.col("ticker") == busiest).height
    quoted = joined.drop_nulls(["bid_e6", "ask_e6"])
    assert quoted.height > 0 and (quoted["bid_e6"] < quoted["ask_e6"]).all()
