"""The one mapping from Kalshi's status words to ssmd's market statuses.

Kalshi answers `GET /markets` with `initialized`, `inactive`, `active`, `closed`,
`determined`, `disputed`, `amended`, `finalized` (and older `settled`/`open`), but its
`status` *filter* takes `unopened|open|paused|closed|settled`. ssmd keeps one status
vocabulary, the `Status` enum of schemas/ssmd.capnp: open, closed, halted,
initialized, determined, settled, unknown.

An unknown word maps to `unknown`; the word itself is always stored next to it
(`status_text`) and a warning is logged once per word.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

__all__ = [
    "FILTER_WORDS",
    "SSMD_STATUSES",
    "TERMINAL_RANK",
    "filter_to_statuses",
    "lifecycle_status",
    "map_status",
    "unknown_seen",
]

log = logging.getLogger(__name__)

SSMD_STATUSES: Final = (
    "open",
    "closed",
    "halted",
    "initialized",
    "determined",
    "settled",
    "unknown",
)

_MAP: Final[dict[str, str]] = {
    # response values (era C)
    "initialized": "initialized",
    "inactive": "halted",  # paused during trading hours
    "active": "open",
    "closed": "closed",
    "determined": "determined",
    "disputed": "determined",  # result known but contested: not final
    "amended": "determined",  # result corrected: not final
    "finalized": "settled",
    "settled": "settled",
    # older response values and filter words, for records written by other eras
    "open": "open",
    "unopened": "initialized",
    "paused": "halted",
}

# The REST/environment filter words (`symbols.statuses`) and the ssmd statuses they select.
FILTER_WORDS: Final[dict[str, frozenset[str]]] = {
    "unopened": frozenset({"initialized"}),
    "open": frozenset({"open", "halted"}),  # Kalshi lists paused markets under open
    "paused": frozenset({"halted"}),
    "closed": frozenset({"closed", "determined"}),
    "settled": frozenset({"settled"}),
}

# How far along its life a status is; a later source may not move a market back from a
# terminal rank (REST lags the WebSocket by up to ~30 s around settlement).
TERMINAL_RANK: Final[dict[str, int]] = {
    "initialized": 0,
    "open": 1,
    "halted": 1,
    "closed": 2,
    "determined": 3,
    "settled": 4,
    "unknown": -1,
}

_unknown: dict[str, int] = {}


def map_status(word: object) -> str:
    """The ssmd status of a Kalshi status word; `unknown` (with a warning) for anything else."""
    if isinstance(word, str):
        mapped = _MAP.get(word.strip().lower())
        if mapped is not None:
            return mapped
    key = repr(word)
    if key not in _unknown:
        log.warning(
            "unknown Kalshi market status %s: stored as 'unknown' with the word kept verbatim",
            key,
        )
    _unknown[key] = _unknown.get(key, 0) + 1
    return "unknown"


def unknown_seen() -> dict[str, int]:
    """Unknown status words met by this process and how often (for metrics and tests)."""
    return dict(_unknown)


def filter_to_statuses(words: Iterable[str]) -> frozenset[str]:
    """The ssmd statuses selected by environment/REST filter words (empty = every status)."""
    out: set[str] = set()
    for w in words:
        if w not in FILTER_WORDS:
            raise ValueError(f"unknown status filter {w!r}; expected one of {sorted(FILTER_WORDS)}")
        out |= FILTER_WORDS[w]
    return frozenset(out)


def lifecycle_status(event: object, is_deactivated: object = True) -> tuple[str, str] | None:
    """(ssmd status, Kalshi word) that a lifecycle event moves a market to, or None when the
    event says nothing about status.

    `deactivated` carries `is_deactivated`: true pauses the market, false resumes it.
    `created` returns None: it sets `initialized` only for a market not seen before, which
    only the caller knows.
    """
    if event == "activated":
        return "open", "active"
    if event == "deactivated":
        return ("halted", "inactive") if is_deactivated else ("open", "active")
    if event in ("determined", "settled"):
        return str(event), str(event)
    return None
