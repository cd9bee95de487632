"""Fault scenarios: what goes wrong, and when. Built in Python or loaded from YAML.

A fault fires exactly once, when its trigger is met:
- `at`: seconds of simulator clock after the simulator started, or
- `after_frames`: once the target connection has been sent that many data frames, or
- for `reject_auth` only, `connection`: the number (1-based) of the WebSocket handshake to
  reject (then `count` handshakes in a row).
`connection` selects the target connection by its number (1 = first accepted); when
omitted, a time-triggered fault hits every open connection and a frame-triggered one
hits whichever connection reaches the count first.

The REST faults and the reply faults (`drop_reply`, `already_subscribed`, `unknown_sid`)
are armed at `at` and then hit the next `count` requests, or commands on `channel` (of
connection `connection` only, when given), whenever they come: on connections opened
later too.

Limits (`market_cap`, `command_rate`, `ack_delay`) hold for the whole run.
`hostile_tickers` adds markets whose tickers are hostile to subjects, paths and file
names (ssmd.sim.universe.HOSTILE_TICKERS) to the universe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from ssmd.exceptions import ConfigError

__all__ = ["ARMED_KINDS", "CommandRate", "Fault", "FaultKind", "Scenario"]


class FaultKind(StrEnum):
    DISCONNECT = "disconnect"  # abrupt TCP close, no close frame
    STALL = "stall"  # half-open: no data, no pings, no pongs, socket stays open
    WITHHOLD_PONGS = "withhold_pongs"  # client pings go unanswered; data keeps flowing
    SEQ_GAP = "seq_gap"  # skip one seq number on a sid
    SEQ_DUPLICATE = "seq_duplicate"  # send the next frame of a sid twice
    SEQ_REORDER = "seq_reorder"  # swap the next two frames of a sid
    EMPTY_TICKER = "empty_ticker"  # the next frame of a sid names market "" (its seq as usual)
    MALFORMED_FRAME = "malformed_frame"  # a text frame that is not valid JSON
    UNKNOWN_TYPE = "unknown_type"  # a well-formed frame of an unknown message type
    OVERSIZE_FRAME = "oversize_frame"  # a well-formed frame of `size` bytes
    BUFFER_OVERFLOW = "buffer_overflow"  # error 25 on a sid, which then stops
    REJECT_AUTH = "reject_auth"  # HTTP 401 on the WebSocket upgrade
    REST_429 = "rest_429"  # the next `count` REST requests answer 429
    REST_401 = "rest_401"  # the next `count` REST requests answer 401 (a key refused)
    # The next `count` commands on `channel` (a subscribe naming it, an update_subscription
    # of its sid) are carried out, but their replies are lost on the way.
    DROP_REPLY = "drop_reply"
    # The next `count` subscribes of `channel` on a connection that holds it already get
    # error 6 "Already subscribed" (no sid) in place of `ok`; the markets they name are
    # subscribed all the same.
    ALREADY_SUBSCRIBED = "already_subscribed"
    # The next `count` update_subscription or unsubscribe commands on the sid of `channel`
    # find the server has lost it: the subscription is forgotten (its frames stop) and the
    # command gets error 7 "Unknown subscription ID", as any sid the server does not hold.
    UNKNOWN_SID = "unknown_sid"


CONNECTION_KINDS = {
    FaultKind.DISCONNECT,
    FaultKind.STALL,
    FaultKind.WITHHOLD_PONGS,
    FaultKind.SEQ_GAP,
    FaultKind.SEQ_DUPLICATE,
    FaultKind.SEQ_REORDER,
    FaultKind.EMPTY_TICKER,
    FaultKind.MALFORMED_FRAME,
    FaultKind.UNKNOWN_TYPE,
    FaultKind.OVERSIZE_FRAME,
    FaultKind.BUFFER_OVERFLOW,
}
# Armed at `at`, then spent on what comes next: REST requests, or commands on a channel.
ARMED_KINDS = {
    FaultKind.REST_429,
    FaultKind.REST_401,
    FaultKind.DROP_REPLY,
    FaultKind.ALREADY_SUBSCRIBED,
    FaultKind.UNKNOWN_SID,
}


@dataclass
class Fault:
    kind: FaultKind
    at: float | None = None
    after_frames: int | None = None
    connection: int | None = None
    # for seq faults, empty_ticker, buffer_overflow and the reply faults
    channel: str = "orderbook_delta"
    # reject_auth and the armed faults: how many; seq_gap: how many numbers skipped
    count: int = 1
    duration: float | None = None  # stall / withhold_pongs: seconds of clock (None = forever)
    size: int = 2 * 1024 * 1024  # oversize_frame: bytes of the frame

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        triggers = sum(x is not None for x in (self.at, self.after_frames))
        if self.kind is FaultKind.REJECT_AUTH:
            if triggers + (self.connection is not None) != 1:
                raise ValueError("reject_auth needs exactly one of at, connection")
            if self.after_frames is not None:
                raise ValueError("reject_auth cannot use after_frames")
        elif triggers != 1:
            raise ValueError(f"{self.kind.value} needs exactly one of at, after_frames")
        if self.kind in ARMED_KINDS and self.after_frames is not None:
            raise ValueError(f"{self.kind.value} is triggered by at only")
        if self.count < 1:
            raise ValueError("count must be >= 1")


@dataclass(frozen=True)
class CommandRate:
    """At most `max_commands` commands per `per_seconds` (sim clock) per connection (error 27)."""

    max_commands: int
    per_seconds: float


@dataclass
class Scenario:
    faults: list[Fault] = field(default_factory=list)
    market_cap: int | None = None  # markets per subscription before error 26
    command_rate: CommandRate | None = None
    ack_delay: float = 0.0  # seconds of clock before subscribe replies go out (data first)
    hostile_tickers: bool = False  # add the HOSTILE_TICKERS markets to the universe

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<scenario>") -> Scenario:
        keys = ("faults", "market_cap", "command_rate", "ack_delay", "hostile_tickers")
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a scenario is a mapping with keys {', '.join(keys)}")
        unknown = set(data) - set(keys)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(keys)}"
            )
        hostile = data.get("hostile_tickers", False)
        if not isinstance(hostile, bool):
            raise ConfigError(
                f"{where}: hostile_tickers must be true or false, not {hostile!r}. "
                "Fix: write hostile_tickers: true (or leave it out)"
            )
        faults = []
        for i, raw in enumerate(data.get("faults") or []):
            try:
                faults.append(Fault(**raw))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: faults[{i}]: {exc}") from None
        rate = data.get("command_rate")
        try:
            cr = (
                CommandRate(int(rate["max_commands"]), float(rate["per_seconds"])) if rate else None
            )
            cap = data.get("market_cap")
            return cls(
                faults,
                int(cap) if cap is not None else None,
                cr,
                float(data.get("ack_delay") or 0.0),
                hostile,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad command_rate/market_cap/ack_delay ({exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except OSError as exc:
            raise ConfigError(f"scenario file {p} cannot be read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"scenario file {p} is not valid YAML ({exc})") from None
        return cls.from_dict(data or {}, str(p))
