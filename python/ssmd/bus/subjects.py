"""The one subject builder. Every producer and consumer of ssmd subjects calls this module.

Subjects (docs/architecture.md):
    {env}.{feed}.raw.{msgtype}      raw exchange frames, exactly as received
    {env}.{feed}.{type}.{ticker}    normalized records (type: trade, orderbook, ticker, lifecycle, ...)
    {env}.{feed}.events.{kind}      connector events (connected, disconnected, gap, resync, ...)

Tickers go into a subject token through `escape_token`, a percent-style escape: `%`,
`.`, `*`, `>`, `~`, whitespace, control and non-ASCII characters become `%XX` (one per
UTF-8 byte, upper-case hex). Everything else is kept, so ordinary tickers read as
themselves. The empty string is the lone token `%`.

A token is at most MAX_TOKEN bytes: an exchange may send a ticker of any length, and a
subject over the server's control-line limit (4096 bytes) would make nats-server close
the connection, and the re-publish after reconnect would close it again. A longer token
is cut by `bounded` to a readable prefix, `~` and 16 hex digits of the value's sha256;
`~` is escaped everywhere else, so it only ever marks a cut token. A cut token does not
give the value back (`unescape_token` refuses it): consumers read tickers from payloads,
and `unescape_token` exists for tools and tests.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ssmd import core

__all__ = [
    "BOOK",
    "EVENTS",
    "HASH_MARK",
    "MAX_TOKEN",
    "RAW",
    "bounded",
    "covers",
    "escape_token",
    "event",
    "every_ticker",
    "matches",
    "prefix",
    "published",
    "raw",
    "record",
    "type_prefix",
    "under",
    "unescape_token",
]

# The type tokens that are not record types: raw frames, connector events, and book
# checkpoints (full books of the connector's, beside the record type "orderbook").
RAW: Final = "raw"
EVENTS: Final = "events"
BOOK: Final = "book"

_SPECIAL: Final = frozenset("%.*>~")
_EMPTY: Final = "%"
MAX_TOKEN: Final = 128
HASH_MARK: Final = "~"
_HASH_HEX: Final = 16


def _needs_escape(ch: str) -> bool:
    return ch in _SPECIAL or ch.isspace() or not (0x21 <= ord(ch) <= 0x7E)


def bounded(escaped: str, value: str, limit: int) -> str:
    """`escaped` (an ASCII escape of `value`) if it fits in `limit` bytes, else its
    readable prefix, HASH_MARK and a hash of `value`, never cut inside a `%XX`."""
    if len(escaped) <= limit:
        return escaped
    digest = hashlib.sha256(value.encode()).hexdigest()[:_HASH_HEX]
    head = escaped[: limit - len(HASH_MARK) - _HASH_HEX]
    cut = head.find("%", len(head) - 2)
    if cut >= 0:
        head = head[:cut]
    return f"{head}{HASH_MARK}{digest}"


def escape_token(value: str) -> str:
    """A valid NATS subject token of at most MAX_TOKEN bytes for any string (tickers
    contain dots); reversible unless cut (see the module doc)."""
    if not value:
        return _EMPTY
    if not any(_needs_escape(ch) for ch in value):
        return bounded(value, value, MAX_TOKEN)
    out: list[str] = []
    for ch in value:
        if _needs_escape(ch):
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return bounded("".join(out), value, MAX_TOKEN)


def unescape_token(token: str) -> str:
    """The inverse of escape_token; ValueError for a cut token or one escape_token
    cannot produce."""
    if token == _EMPTY:
        return ""
    if HASH_MARK in token:
        raise ValueError(f"subject token {token!r} was cut: its value is in the payload")
    if "%" not in token:
        return token
    buf = bytearray()
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "%":
            hexpart = token[i + 1 : i + 3]
            if len(hexpart) != 2 or hexpart.upper() != hexpart:
                raise ValueError(f"bad escape in subject token {token!r}")
            buf.append(int(hexpart, 16))
            i += 3
        else:
            buf.extend(ch.encode("utf-8"))
            i += 1
    return buf.decode("utf-8")


def prefix(env: str, feed: str) -> str:
    return f"{env}.{feed}"


def type_prefix(prefix: str, kind: str) -> str:
    """The start of every subject of one type token under `prefix` (`prod.kalshi.book.`),
    for a consumer that tells types apart by subject."""
    return f"{prefix}.{kind}."


def raw(env: str, feed: str, msgtype: str) -> str:
    """Subject of a raw frame; msgtype is a FRAME_KINDS name (unknown, malformed included)."""
    return f"{env}.{feed}.{RAW}.{msgtype}"


def record(env: str, feed: str, record_type: str, ticker: str) -> str:
    """Subject of a normalized record."""
    return f"{env}.{feed}.{record_type}.{escape_token(ticker)}"


def event(env: str, feed: str, kind: str) -> str:
    """Subject of a connector event."""
    return f"{env}.{feed}.{EVENTS}.{kind}"


def under(prefix: str, *tokens: str) -> str:
    """The filter for every subject below `prefix` and then `tokens`:
    `under("prod.kalshi", "raw")` is `prod.kalshi.raw.>`."""
    return ".".join((prefix, *tokens, ">"))


def every_ticker(prefix: str, record_type: str) -> str:
    """The filter for the records of one type, any ticker (one escaped token)."""
    return f"{prefix}.{record_type}.*"


def published(prefix: str) -> list[str]:
    """The filters of everything a connector publishes under `prefix`."""
    kinds = (RAW, EVENTS, *core.RECORD_TYPES, BOOK)
    return [every_ticker(prefix, k) for k in kinds]


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` matches one token, a final `>` one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return i == len(p) - 1 and len(s) > i
        if i >= len(s):
            return False
        if tok != "*" and tok != s[i]:
            return False
    return len(p) == len(s)


def covers(patterns: list[str] | tuple[str, ...], subject_pattern: str) -> bool:
    """True when every subject matching `subject_pattern` matches one of `patterns`.

    Checked by treating the wildcards of `subject_pattern` as concrete tokens, which is
    exact for the shapes ssmd uses (a fixed prefix, then `*` or `>`).
    """
    probe = subject_pattern.replace("*", "x")
    if probe.endswith(">"):
        probe = probe[:-1] + "x"
        deeper = probe + ".y"
        return any(matches(p, probe) and matches(p, deeper) for p in patterns)
    return any(matches(p, probe) for p in patterns)
