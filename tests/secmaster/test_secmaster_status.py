"""Kalshi status words -> ssmd statuses: every documented word, filters, unknown words."""

from __future__ import annotations

import logging

import pytest

from ssmd.secmaster.model import market_row, to_e6
from ssmd.secmaster.status import SSMD_STATUSES, filter_to_statuses, lifecycle_status, map_status

DOCUMENTED = {
    "initialized": "initialized",
    "inactive": "halted",
    "active": "open",
    "closed": "closed",
    "determined": "determined",
    "disputed": "determined",
    "amended": "determined",
    "finalized": "settled",
    "settled": "settled",
}


@pytest.mark.parametrize(("word", "expected"), sorted(DOCUMENTED.items()))
def test_every_documented_status_maps(word: str, expected: str) -> None:
    assert map_status(word) == expected
    assert expected in SSMD_STATUSES


def test_unknown_status_is_kept_verbatim_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ssmd.secmaster.status"):
        row = market_row({"ticker": "KXNEW-1", "status": "suspended_by_regulator"})
    assert row["status"] == "unknown"
    assert row["status_text"] == "suspended_by_regulator"
    assert "suspended_by_regulator" in caplog.text


def test_filter_words_differ_from_response_words() -> None:
    assert filter_to_statuses(["open"]) == {"open", "halted"}
    assert filter_to_statuses(["unopened"]) == {"initialized"}
    assert filter_to_statuses(["closed", "settled"]) == {"closed", "determined", "settled"}
    with pytest.raises(ValueError):
        filter_to_statuses(["active"])  # a response word, rejected as a filter by Kalshi


def test_exact_values_never_floats() -> None:
    assert to_e6("0.9990") == 999_000
    assert to_e6("2233487.48") == 2_233_487_480_000
    assert to_e6("") is None and to_e6(None) is None
    assert to_e6(34, scale=100) == 340_000  # era-A cents
    row = market_row(
        {
            "ticker": "KXBTCD-26JUL2017-T119999.99",
            "status": "determined",
            "floor_strike": 119999.99,
            "settlement_value_dollars": "1.0000",
            "last_price_dollars": "0.3400",
            "volume_fp": "18422.37",
            "result": "yes",
        }
    )
    assert row["floor_strike"] == "119999.99"
    assert row["settlement_value_e6"] == 1_000_000
    assert row["last_price_e6"] == 340_000
    assert row["volume_e6"] == 18_422_370_000
    assert all(not isinstance(v, float) for v in row.values())


@pytest.mark.parametrize(
    ("event", "is_deactivated", "expected"),
    [
        ("activated", True, ("open", "active")),
        ("deactivated", True, ("halted", "inactive")),
        ("deactivated", False, ("open", "active")),
        ("determined", True, ("determined", "determined")),
        ("settled", True, ("settled", "settled")),
        ("created", True, None),
        ("close_date_updated", True, None),
    ],
)
def test_lifecycle_events_move_status_one_way_everywhere(
    event: str, is_deactivated: bool, expected: tuple[str, str] | None
) -> None:
    assert lifecycle_status(event, is_deactivated) == expected
    if expected is not None:
        assert map_status(expected[1]) == expected[0]
