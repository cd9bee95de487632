"""Building blocks shared by every kind of config document.

Every document has the same envelope (`apiVersion`, `kind`, `metadata`, `spec`)
so that a file announces what it is and an editor can pick its JSON Schema.
Field values that need a specific textual form (names, durations, URLs) are
constrained by a regular expression: the same pattern ends up in the JSON
Schema, and `PATTERN_HINTS` turns a mismatch into a sentence a person can act on.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

API_VERSION: Final = "ssmd/v1"

# The normalized record types, as the core names them (core.RECORD_TYPES; a test keeps
# the two equal): schema registry entries and the type token of a record's subject and
# archive path. Connector events are the record type "event"; their subjects and archive
# folder are "events" (ssmd.bus.subjects.event, ssmd.store.keys.EVENTS_TYPE).
RecordType = Literal["trade", "orderbook", "ticker", "lifecycle", "status", "event"]
RECORD_TYPES: Final = get_args(RecordType)

NAME_PATTERN: Final = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
KEY_PATTERN: Final = r"^[a-z][a-z0-9_]{0,62}$"
VERSION_PATTERN: Final = r"^v[0-9]+$"
DURATION_PATTERN: Final = r"^([0-9]+(ms|s|m|h|d))+$"
WS_URL_PATTERN: Final = r"^wss?://[^\s/?#]+(/\S*)?$"
HTTP_URL_PATTERN: Final = r"^https?://[^\s/?#]+(/\S*)?$"
CLOCK_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"

# Shown instead of the raw regular expression when a value does not match.
PATTERN_HINTS: Final[dict[str, str]] = {
    NAME_PATTERN: "lower-case letters, digits and '-' (at most 63, not starting or ending with '-'), e.g. kalshi-dev",
    KEY_PATTERN: "a lower-case identifier of letters, digits and '_', e.g. kalshi_api_key",
    VERSION_PATTERN: "a version such as v1 or v2",
    DURATION_PATTERN: "a duration such as 48h, 2m, 90s, 500ms, 7d or 1h30m",
    WS_URL_PATTERN: "a WebSocket URL such as wss://host/trade-api/ws/v2",
    HTTP_URL_PATTERN: "an HTTP(S) URL such as https://host/trade-api/v2",
    CLOCK_PATTERN: 'a 24-hour clock time in quotes, such as "09:30" (or "09:30:15")',
}

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
WsUrl = Annotated[str, StringConstraints(pattern=WS_URL_PATTERN)]
HttpUrl = Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN)]
ClockTime = Annotated[str, StringConstraints(pattern=CLOCK_PATTERN)]

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Turn a duration such as "1h30m" into a timedelta (ValueError if malformed)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not {PATTERN_HINTS[DURATION_PATTERN]}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def env_var_token(name: str) -> str:
    """Upper-case a name for use inside an environment variable or stream name."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(StrictModel):
    name: Name = Field(description="Unique name; must equal the file name without .yaml.")
    description: str | None = Field(default=None, description="Free text for people.")


class Document(StrictModel):
    """The envelope every config file shares."""

    api_version: Literal["ssmd/v1"] = Field(alias="apiVersion", description="Always ssmd/v1.")
    kind: str  # each kind narrows this to its own literal
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name
