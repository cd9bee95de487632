"""THE storage key layout (docs/archiver.md). Producers and readers both call this.

Keys are relative to a bucket (an S3 bucket, or a folder for local storage):

    raw         {env}/{feed}/YYYY/MM/DD/{msgtype}-HH.jsonl.zst
    normalized  {env}/{feed}/v1/{type}/YYYY/MM/DD/{ticker}/data.capnp.zst
    manifests   {env}/{feed}/YYYY/MM/DD/manifest.json             (data_type "raw")
                {env}/{feed}/v1/{type}/YYYY/MM/DD/manifest.json   (data_type = record type)
    file meta   {data key}.meta.json   (counts, sequence range, sha256 of one sealed file)

Dates and hours are UTC and come from the local receive time of each message.
Connector events are normalized type `events`, under the ticker segment `_events`.

Ticker segment: a ticker is used as is when it is safe in a path (no `/`, `\\`,
`%`, `~`, whitespace, control or non-ASCII characters, not starting with `.`), so
dotted Kalshi tickers stay readable. Otherwise it is `escape_token(ticker)`
(ssmd.bus.subjects, which escapes `~` too) with `/` and `\\` also escaped as `%2F`, `%5C`.
Both forms are read back with `unescape_token`. A segment longer than
MAX_SEGMENT bytes (a long or non-ASCII ticker: an escape is 3 bytes per UTF-8
byte) is cut to a readable prefix plus `~` and a hash of the ticker, so that no
path component comes near the filesystems' 255-byte limit; such a segment does
not give the ticker back (`ticker_from_segment` is None) and readers take it
from the records (the file's `.meta.json` carries it too).

Message types name raw files: 1 to 64 ASCII letters, digits or `_` (the
connector's frame kinds); raw_key refuses anything else.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ssmd.bus.subjects import HASH_MARK, bounded, escape_token, unescape_token

__all__ = [
    "BACKFILLED_TYPES",
    "EVENTS_SEGMENT",
    "EVENTS_TYPE",
    "MAX_SEGMENT",
    "META_SUFFIX",
    "QUARANTINE_MSGTYPE",
    "RAW_DATA_TYPE",
    "KeyInfo",
    "backfill_type",
    "day_of_ns",
    "env_prefix",
    "feed_prefix",
    "hour_of_ns",
    "manifest_key",
    "meta_key",
    "normalized_day_prefix",
    "normalized_key",
    "normalized_type_prefix",
    "parse_key",
    "raw_day_prefix",
    "raw_key",
    "source_of",
    "ticker_from_segment",
    "ticker_segment",
]

RAW_DATA_TYPE = "raw"
QUARANTINE_MSGTYPE = "quarantined"  # raw files of messages that could not be stored
EVENTS_TYPE = "events"
EVENTS_SEGMENT = "_events"
SCHEMA_DIR = "v1"
META_SUFFIX = ".meta.json"
MANIFEST = "manifest.json"
RAW_SUFFIX = ".jsonl.zst"
NORMALIZED_NAME = "data.capnp.zst"
# Records fetched afterwards from the venue's REST API to fill a gap (`ssmd data
# backfill`) are their own normalized type, `{type}_backfill`, so they never mix with
# what was received live. Only trades: the REST API has no history of books.
BACKFILLED_TYPES = ("trade",)
BACKFILL_SUFFIX = "_backfill"
LIVE_SOURCE = "live"
REST_BACKFILL_SOURCE = "rest_backfill"


def day_of_ns(receive_ns: int) -> date:
    """The UTC date of a receive time in nanoseconds."""
    return datetime.fromtimestamp(receive_ns // 1_000_000_000, UTC).date()


def hour_of_ns(receive_ns: int) -> int:
    return (receive_ns // 3_600_000_000_000) % 24


def _day_path(day: date) -> str:
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


# Bytes of a ticker segment at most: a path component must stay well under 255 bytes
# with the spool's and stores' suffixes and temporary names added.
MAX_SEGMENT = 120
_MSGTYPE = re.compile(r"[A-Za-z0-9_]{1,64}")


def _unsafe(ch: str) -> bool:
    return ch in "%/\\~" or ch.isspace() or not (0x21 <= ord(ch) <= 0x7E)


@functools.lru_cache(maxsize=65536)
def ticker_segment(ticker: str) -> str:
    """The path segment of a ticker (see the module doc): at most MAX_SEGMENT bytes,
    never empty, never starting with `.`, reversible unless hashed."""
    if ticker and not ticker.startswith(".") and not any(_unsafe(c) for c in ticker):
        segment = ticker
    else:
        segment = escape_token(ticker).replace("/", "%2F").replace("\\", "%5C")
    return bounded(segment, ticker, MAX_SEGMENT)


def ticker_from_segment(segment: str) -> str | None:
    """The ticker of a segment; None for a hashed one (the records carry the ticker)."""
    if HASH_MARK in segment:
        return None
    return unescape_token(segment)


def _token(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid {what} {value!r} for a storage key")
    return value


def env_prefix(env: str) -> str:
    """Every key of an environment, all feeds. It ends with the separator, so the
    prefix of `kalshi` never covers the keys of `kalshi-dev`."""
    return f"{_token(env, 'env')}/"


def feed_prefix(env: str, feed: str) -> str:
    """Every key of a feed (in the raw bucket: its raw files and manifests)."""
    return f"{env_prefix(env)}{_token(feed, 'feed')}/"


def normalized_type_prefix(env: str, feed: str, record_type: str) -> str:
    """Every key of one normalized record type, all days."""
    return f"{feed_prefix(env, feed)}{SCHEMA_DIR}/{_token(record_type, 'record type')}/"


def backfill_type(record_type: str) -> str:
    """The normalized type of `record_type`'s records fetched from the venue's REST API
    to fill gaps (`trade` -> `trade_backfill`)."""
    if record_type not in BACKFILLED_TYPES:
        raise ValueError(f"{record_type} records cannot be backfilled")
    return record_type + BACKFILL_SUFFIX


def source_of(data_type: str) -> str:
    """Where a normalized type's records come from: `rest_backfill` or `live`."""
    return REST_BACKFILL_SOURCE if data_type.endswith(BACKFILL_SUFFIX) else LIVE_SOURCE


def raw_day_prefix(env: str, feed: str, day: date) -> str:
    return f"{feed_prefix(env, feed)}{_day_path(day)}/"


def normalized_day_prefix(env: str, feed: str, record_type: str, day: date) -> str:
    return f"{normalized_type_prefix(env, feed, record_type)}{_day_path(day)}/"


def raw_key(env: str, feed: str, msgtype: str, day: date, hour: int) -> str:
    """`{env}/{feed}/YYYY/MM/DD/{msgtype}-HH.jsonl.zst`."""
    if not _MSGTYPE.fullmatch(msgtype):
        raise ValueError(
            f"message type {msgtype[:80]!r} cannot name a raw file "
            "(1 to 64 ASCII letters, digits or _)"
        )
    if not 0 <= hour < 24:
        raise ValueError(f"bad raw key part: hour={hour}")
    return f"{raw_day_prefix(env, feed, day)}{msgtype}-{hour:02d}{RAW_SUFFIX}"


def normalized_key(env: str, feed: str, record_type: str, day: date, ticker: str) -> str:
    """`{env}/{feed}/v1/{type}/YYYY/MM/DD/{ticker}/data.capnp.zst`."""
    segment = EVENTS_SEGMENT if record_type == EVENTS_TYPE else ticker_segment(ticker)
    return f"{normalized_day_prefix(env, feed, record_type, day)}{segment}/{NORMALIZED_NAME}"


def manifest_key(env: str, feed: str, data_type: str, day: date) -> str:
    """The manifest of one day and data type ("raw", or a normalized record type)."""
    if data_type == RAW_DATA_TYPE:
        return raw_day_prefix(env, feed, day) + MANIFEST
    return normalized_day_prefix(env, feed, data_type, day) + MANIFEST


def meta_key(data_key: str) -> str:
    return data_key + META_SUFFIX


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a key is: kind is "raw", "normalized", "manifest" or "meta"."""

    kind: str
    env: str
    feed: str
    data_type: str  # "raw" or the normalized record type
    day: date
    msgtype: str | None = None  # raw files
    hour: int | None = None  # raw files
    ticker: str | None = None  # normalized files, when the segment gives it back
    data_key: str | None = None  # meta: the file it describes
    segment: str | None = None  # normalized files: the ticker's segment (one per ticker)


_DAY = r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})"
_RAW = re.compile(
    rf"^(?P<env>[^/]+)/(?P<feed>[^/]+)/{_DAY}/(?P<msg>[^/-]+)-(?P<h>\d{{2}})\.jsonl\.zst$"
)
_RAW_MANIFEST = re.compile(rf"^(?P<env>[^/]+)/(?P<feed>[^/]+)/{_DAY}/manifest\.json$")
_NORM = re.compile(
    rf"^(?P<env>[^/]+)/(?P<feed>[^/]+)/v1/(?P<type>[^/]+)/{_DAY}/(?P<seg>[^/]+)/data\.capnp\.zst$"
)
_NORM_MANIFEST = re.compile(
    rf"^(?P<env>[^/]+)/(?P<feed>[^/]+)/v1/(?P<type>[^/]+)/{_DAY}/manifest\.json$"
)


def parse_key(key: str) -> KeyInfo | None:
    """The inverse of the builders; None for a key outside the layout."""
    if key.endswith(META_SUFFIX):
        inner = parse_key(key[: -len(META_SUFFIX)])
        if inner is None or inner.kind not in (RAW_DATA_TYPE, "normalized"):
            return None
        return dataclasses.replace(inner, kind="meta", data_key=key[: -len(META_SUFFIX)])
    try:
        if m := _RAW.match(key):
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
            hour = int(m["h"])
            if hour >= 24:
                return None
            return KeyInfo("raw", m["env"], m["feed"], RAW_DATA_TYPE, day, m["msg"], hour)
        if m := _RAW_MANIFEST.match(key):
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
            return KeyInfo("manifest", m["env"], m["feed"], RAW_DATA_TYPE, day)
        if m := _NORM.match(key):
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
            seg = m["seg"]
            if m["type"] == EVENTS_TYPE:
                ticker = "" if seg == EVENTS_SEGMENT else None
                if ticker is None:
                    return None
            else:
                ticker = ticker_from_segment(seg)
            return KeyInfo(
                "normalized", m["env"], m["feed"], m["type"], day, ticker=ticker, segment=seg
            )
        if m := _NORM_MANIFEST.match(key):
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
            return KeyInfo("manifest", m["env"], m["feed"], m["type"], day)
    except ValueError:
        return None
    return None
