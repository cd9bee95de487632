"""API keys: parsing the `gateway_api_keys` secret, matching a presented key, limits.

The secret's text holds one key per line (`#` starts a comment):

    <name> sha256:<64 hex digits> [connections=N] [symbols=N] [transform=NAME]

Only the SHA-256 of a key is stored, so the secret can be read by operators without
leaking usable keys. A presented key is hashed and compared with every stored digest
in constant time (hmac.compare_digest), all of them, so the time taken says nothing
about which key came close. Neither keys nor digests appear in logs or errors.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from ssmd.exceptions import ConfigError

__all__ = ["ApiKey", "KeyRing", "digest", "new_key", "presented_key"]

_NAME: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_DIGEST: Final = re.compile(r"^sha256:([0-9a-f]{64})$")
_LIMITS: Final = ("connections", "symbols")
_TRANSFORM: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
KEY_PREFIX: Final = "ssmd_"
LINE_FORM: Final = (
    "<name> sha256:<64 lower-case hex digits> [connections=N] [symbols=N] [transform=NAME]"
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: str = field(repr=False)
    connections: int | None = None  # concurrent WebSocket connections; None = no limit
    symbols: int | None = None  # symbols per connection; None = the gateway's default
    tenant: str | None = None  # the tenant whose secret holds the key; None = an operator's
    transform: str | None = None  # a Lua transform of the environment (spec.transforms)


def _parse_line(line: str, where: str) -> ApiKey:
    words = line.split()
    if len(words) < 2 or not _NAME.match(words[0]):
        raise ConfigError(
            f"{where}: expected `{LINE_FORM}` with a name of letters, digits and _.@- "
            "(64 at most). Fix: correct the line"
        )
    m = _DIGEST.match(words[1])
    if m is None:
        raise ConfigError(
            f"{where} (key {words[0]}): the second word must be sha256:<64 lower-case hex "
            "digits>, the hash of the key, never the key itself. Fix: run "
            "`ssmd gateway new-key NAME` and paste the line it prints"
        )
    limits: dict[str, int] = {}
    transform = None
    for word in words[2:]:
        k, eq, v = word.partition("=")
        if k == "transform" and _TRANSFORM.match(v):
            transform = v
            continue
        if k not in _LIMITS or not eq or not v.isdigit() or int(v) < 1:
            raise ConfigError(
                f"{where} (key {words[0]}): unknown option {k!r}; expected connections=N, "
                "symbols=N with N >= 1 or transform=NAME. Fix: correct the line"
            )
        limits[k] = int(v)
    return ApiKey(
        words[0],
        m.group(1),
        limits.get("connections"),
        limits.get("symbols"),
        transform=transform,
    )


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[ApiKey, ...]

    @classmethod
    def parse(cls, text: str, origin: str = "secret gateway_api_keys") -> KeyRing:
        keys: list[ApiKey] = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                keys.append(_parse_line(line, f"{origin} line {n}"))
        names = [k.name for k in keys]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(
                f"{origin}: key names must be unique; repeated: {', '.join(dup)}. "
                "Fix: rename or remove the repeated lines"
            )
        if not keys:
            raise ConfigError(
                f"{origin} holds no key; expected lines `{LINE_FORM}`. Fix: add a key with "
                "`ssmd gateway new-key NAME`, or remove the secret to run without keys on a "
                "loopback address"
            )
        return cls(tuple(keys))

    @classmethod
    def merge(cls, rings: dict[str | None, KeyRing]) -> KeyRing:
        """One ring of the operator's keys (tenant None) and every tenant's, each key
        marked with its tenant; key names unique across all."""
        keys: list[ApiKey] = []
        owner: dict[str, str] = {}
        for tenant, ring in rings.items():
            for key in ring.keys:
                where = f"tenant {tenant}" if tenant else "gateway_api_keys"
                if key.name in owner:
                    raise ConfigError(
                        f"key name {key.name} is in both {owner[key.name]} and {where}; key "
                        "names are the reporters of data issues and must be unique. Fix: "
                        "rename one"
                    )
                owner[key.name] = where
                keys.append(replace(key, tenant=tenant))
        return cls(tuple(keys))

    def match(self, presented: str | None) -> ApiKey | None:
        """The key whose digest matches `presented`, comparing against every key."""
        if not presented:
            return None
        wanted = digest(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(wanted, key.digest):
                found = key
        return found


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`X-API-Key`, else `Authorization: Bearer <key>`, else the `api_key` query parameter
    (browsers cannot set headers on a WebSocket)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query.get("api_key") or None


def new_key(name: str) -> tuple[str, str]:
    """A fresh random key and the secret line that admits it."""
    if not _NAME.match(name):
        raise ConfigError(
            f"key name {name!r} is not allowed; expected 1-64 letters, digits and _.@-. "
            "Fix: choose another name"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, f"{name} sha256:{digest(key)}"
