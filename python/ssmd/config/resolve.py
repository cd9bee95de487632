"""The effective configuration of one environment: YAML + environment variables + flags.

Every component gets its settings from `load_environment`; see the package
docstring (ssmd.config) for the contract. Precedence, highest first:
    1. `overrides` (command-line flags),
    2. environment variables (SSMD_NATS_URL, SSMD_<FEED>_WS_URL, ...; empty = unset),
    3. the YAML files.
Overridden values are checked with the same rules as the YAML, and an error
names the variable or flag it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ssmd.bus import subjects
from ssmd.config.models.common import (
    HTTP_URL_PATTERN,
    PATTERN_HINTS,
    WS_URL_PATTERN,
    env_var_token,
    parse_duration,
)
from ssmd.config.models.environment import (
    DATABASE_URL_PATTERN,
    EMBEDDED_NATS,
    EMBEDDED_TEMPORAL,
    EMBEDDED_TEMPORAL_ADDRESS,
    HOST_PORT_PATTERN,
    NATS_URL_PATTERN,
    REDIS_URL_PATTERN,
    Environment,
    EnvironmentSpec,
    LocalStorage,
    S3Storage,
    Schedule,
    Symbols,
    Temporal,
    VenueCapture,
)
from ssmd.config.models.feed import CUSTOM_ENDPOINT, Channel, Feed, FeedVersion, Limits
from ssmd.config.problems import display_path, format_problems
from ssmd.config.secrets import MASK, Secret
from ssmd.config.tree import ConfigTree, Snapshot
from ssmd.config.validate import check_snapshot
from ssmd.exceptions import ConfigError
from ssmd.upstate import running_nats_url

DATA_DIR_ENV: Final = "SSMD_DATA_DIR"
DEFAULT_DATA_DIR: Final = "data"

_PATTERNS: Final = {
    "nats_url": NATS_URL_PATTERN,
    "ws_url": WS_URL_PATTERN,
    "rest_url": HTTP_URL_PATTERN,
    "s3_endpoint": HTTP_URL_PATTERN,
    "redis_url": REDIS_URL_PATTERN,
    "database_url": DATABASE_URL_PATTERN,
    "temporal_address": HOST_PORT_PATTERN,
}
# Values that may carry a password: never echoed in errors.
_PRIVATE: Final = ("redis_url", "database_url")


@dataclass(frozen=True)
class Overrides:
    """Values given on the command line; None = not given."""

    data_dir: str | None = None
    nats_url: str | None = None
    ws_url: str | None = None
    rest_url: str | None = None
    s3_endpoint: str | None = None
    redis_url: str | None = None
    database_url: str | None = None
    temporal_address: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, str | None]) -> Overrides:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown override {', '.join(unknown)}; expected one of {', '.join(sorted(known))}. "
                "Fix: use one of those names"
            )
        return cls(**{k: v for k, v in values.items() if v})


def override_variables(feed: str) -> dict[str, str]:
    """Setting -> the environment variable that overrides it (docs/configuration.md)."""
    token = env_var_token(feed)
    return {
        "data_dir": DATA_DIR_ENV,
        "nats_url": "SSMD_NATS_URL",
        "ws_url": f"SSMD_{token}_WS_URL",
        "rest_url": f"SSMD_{token}_REST_URL",
        "s3_endpoint": "SSMD_S3_ENDPOINT",
        "redis_url": "SSMD_REDIS_URL",
        "database_url": "SSMD_DATABASE_URL",
        "temporal_address": "SSMD_TEMPORAL_ADDRESS",
    }


def mask_url(url: str) -> str:
    """Hide the password part of a URL (user:****@host)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Endpoint:
    name: str  # the feed's endpoint set (prod, demo, ...) or "custom"
    ws_url: str
    rest_url: str


@dataclass(frozen=True)
class LocalStore:
    path: Path  # absolute


@dataclass(frozen=True)
class S3Store:
    bucket: str
    endpoint: str | None
    region: str | None


Store = LocalStore | S3Store


@dataclass(frozen=True)
class NatsSettings:
    url: str  # "embedded" or nats://...
    stream: str
    subject_prefix: str  # "{env}.{feed}"
    retention: timedelta
    duplicate_window: timedelta
    replicas: int

    @property
    def embedded(self) -> bool:
        return self.url == EMBEDDED_NATS

    @property
    def subjects(self) -> str:
        return subjects.under(self.subject_prefix)


@dataclass(frozen=True)
class ResolvedEnvironment:
    """Everything a component needs to run in one environment, overrides applied."""

    name: str
    config_dir: Path
    file: Path
    environment: Environment  # as written in the YAML
    feed: Feed
    feed_version: FeedVersion | None  # in effect today (UTC); None before the first version
    endpoint: Endpoint
    channels: tuple[Channel, ...]
    data_dir: Path
    nats: NatsSettings
    raw_store: Store
    normalized_store: Store
    symbols: Symbols
    schedule: Schedule
    limits: Limits
    redis_url: str | None
    database_url: str | None
    temporal_address: str | None
    temporal_namespace: str
    secrets: Mapping[str, Secret]
    sources: Mapping[
        str, str
    ]  # overridable setting -> "flag", the variable name, "yaml"/"default" or "ssmd up"
    temporal_embedded: bool = False  # `temporal: embedded`: `ssmd up` runs the dev server
    feeds: tuple[str, ...] = ()  # every feed the environment captures, spec.feed first
    # None for spec.feed; the feed's name for one of spec.venues, whose local files
    # (spools, logs) carry it beside the environment's name.
    extra_feed: str | None = None

    @property
    def embedded_nats_dir(self) -> Path:
        """Where an embedded nats-server keeps its JetStream files."""
        return self.data_dir / "nats"

    def secret(self, name: str) -> Secret:
        try:
            return self.secrets[name]
        except KeyError:
            known = ", ".join(sorted(self.secrets)) or "none"
            raise ConfigError(
                f"{display_path(self.file)}: spec.secrets has no {name!r} (declared: {known}); "
                f"expected `{name}: env:VAR` or `{name}: file:/path`. Fix: add it to spec.secrets"
            ) from None

    def describe(self) -> dict[str, Any]:
        """JSON-ready view for people and programs; secrets and URL passwords masked."""

        def store(item: Store) -> dict[str, Any]:
            if isinstance(item, LocalStore):
                return {"kind": "local", "path": str(item.path)}
            return {
                "kind": "s3",
                "bucket": item.bucket,
                "endpoint": item.endpoint,
                "region": item.region,
            }

        return {
            "name": self.name,
            "file": str(self.file),
            "feed": {
                "name": self.feed.name,
                "version": self.feed_version.version if self.feed_version else None,
                "endpoint": self.endpoint.name,
                "ws_url": self.endpoint.ws_url,
                "rest_url": self.endpoint.rest_url,
                "channels": [c.name for c in self.channels],
            },
            "feeds": list(self.feeds),
            "data_dir": str(self.data_dir),
            "transport": {
                "nats_url": self.nats.url,
                "stream": self.nats.stream,
                "subjects": self.nats.subjects,
                "retention_seconds": self.nats.retention.total_seconds(),
                "duplicate_window_seconds": self.nats.duplicate_window.total_seconds(),
                "replicas": self.nats.replicas,
            },
            "storage": {"raw": store(self.raw_store), "normalized": store(self.normalized_store)},
            "symbols": self.symbols.model_dump(mode="json"),
            "schedule": self.schedule.model_dump(mode="json"),
            "redis_url": mask_url(self.redis_url) if self.redis_url else None,
            "database_url": mask_url(self.database_url) if self.database_url else None,
            "temporal_address": self.temporal_address,
            "secrets": {
                name: {"ref": s.ref, "value": MASK, "available": s.is_available()}
                for name, s in sorted(self.secrets.items())
            },
            "sources": dict(self.sources),
        }


class _Picker:
    """Chooses flag > environment variable > YAML for each overridable setting."""

    def __init__(
        self, overrides: Overrides, variables: dict[str, str], environ: Mapping[str, str]
    ) -> None:
        self.overrides, self.variables, self.environ = overrides, variables, environ
        self.sources: dict[str, str] = {}
        self.errors: list[str] = []

    def pick(self, setting: str, from_yaml: str | None) -> str | None:
        flag: str | None = getattr(self.overrides, setting)
        variable = self.variables[setting]
        value: str | None
        if flag:
            value, source = flag, "flag"
        elif self.environ.get(variable):
            value, source = self.environ[variable], variable
        else:
            value, source = from_yaml, "yaml" if from_yaml is not None else "default"
        self.sources[setting] = source
        pattern = _PATTERNS.get(setting)
        if source != "yaml" and value is not None and pattern and not re.fullmatch(pattern, value):
            shown = "the value" if setting in _PRIVATE else repr(value)
            origin = (
                f"the --{setting.replace('_', '-')} flag" if source == "flag" else f"${variable}"
            )
            self.errors.append(
                f"{origin}: {shown} has the wrong form; expected {PATTERN_HINTS[pattern]}. "
                f"Fix: correct or unset {origin}"
            )
        return value


def _store(location: LocalStorage | S3Storage, data_dir: Path, s3_endpoint: str | None) -> Store:
    if isinstance(location, LocalStorage):
        path = Path(location.path).expanduser()
        return LocalStore(path if path.is_absolute() else data_dir / path)
    return S3Store(location.bucket, s3_endpoint or location.endpoint, location.region)


def load_environment(
    name: str,
    config_dir: str | Path | None = None,
    overrides: Overrides | Mapping[str, str | None] | None = None,
    *,
    feed: str | None = None,
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
) -> ResolvedEnvironment:
    """Load, validate and resolve environment `name` for one of the feeds it captures
    (`feed`; default its own, spec.feed). See the ssmd.config docstring."""
    environ = os.environ if environ is None else environ
    if not isinstance(overrides, Overrides):
        overrides = Overrides.from_mapping(overrides or {})
    tree = ConfigTree.at(config_dir, environ).require()
    loaded, problems = check_snapshot(Snapshot.read(tree))
    item = loaded.environments.get(name)
    env_file = display_path(tree.path("Environment", name))
    if item is None and not any(p.file == env_file for p in problems):
        known = ", ".join(sorted(loaded.environments)) or "none yet"
        raise ConfigError(
            f"{env_file}: no environment named {name!r}; expected one of: {known}. "
            "Fix: check the name or run `ssmd env create`"
        )
    relevant = {env_file}
    if item is not None:
        relevant.update(
            display_path(tree.path("Feed", capture.feed.name))
            for capture in _captures(item.document.spec)
        )
    blocking = [p for p in problems if p.file in relevant]
    if blocking or item is None:
        raise ConfigError(format_problems(blocking))
    environment = item.document
    spec = environment.spec
    captures = _captures(spec)
    capture = captures[0] if feed is None else _capture(captures, feed, env_file, environment.name)
    selection = capture.feed
    feed_doc = loaded.feeds[selection.name].document

    picker = _Picker(overrides, override_variables(feed_doc.name), environ)
    if selection.endpoint == CUSTOM_ENDPOINT:
        yaml_ws, yaml_rest = selection.ws_url, selection.rest_url
    else:
        chosen = feed_doc.spec.endpoints[selection.endpoint]
        yaml_ws, yaml_rest = chosen.ws_url, chosen.rest_url
    ws_url, rest_url = picker.pick("ws_url", yaml_ws), picker.pick("rest_url", yaml_rest)
    nats_url = picker.pick("nats_url", spec.transport.nats_url)
    data_dir_text = picker.pick("data_dir", None) or DEFAULT_DATA_DIR
    s3_endpoint = picker.pick("s3_endpoint", None)
    redis_url = picker.pick("redis_url", spec.cache.redis_url if spec.cache else None)
    database_url = picker.pick("database_url", spec.database.url if spec.database else None)
    temporal = spec.temporal if isinstance(spec.temporal, Temporal) else None
    embedded_temporal = spec.temporal == EMBEDDED_TEMPORAL
    temporal_address = picker.pick(
        "temporal_address",
        temporal.address
        if temporal
        else (EMBEDDED_TEMPORAL_ADDRESS if embedded_temporal else None),
    )
    if picker.errors:
        raise ConfigError(
            picker.errors[0]
            if len(picker.errors) == 1
            else f"{len(picker.errors)} problems:\n" + "\n".join(f"  - {e}" for e in picker.errors)
        )
    assert ws_url is not None and rest_url is not None and nats_url is not None  # validated above

    data_dir = Path(data_dir_text).expanduser().absolute()
    if nats_url == EMBEDDED_NATS:
        # While `ssmd up` runs on this data dir, the server it started is the one to use.
        running = running_nats_url(data_dir)
        if running is not None:
            nats_url = running
            picker.sources["nats_url"] = "ssmd up"
    selected = selection.channels
    channels = tuple(c for c in feed_doc.spec.channels if selected is None or c.name in selected)
    extra_feed = None if capture is captures[0] else feed_doc.name
    transport = spec.transport
    day = today or datetime.now(UTC).date()
    return ResolvedEnvironment(
        name=environment.name,
        config_dir=tree.root,
        file=item.path,
        environment=environment,
        feed=feed_doc,
        feed_version=feed_doc.version_on(day),
        endpoint=Endpoint(selection.endpoint, ws_url, rest_url),
        channels=channels,
        data_dir=data_dir,
        nats=NatsSettings(
            url=nats_url,
            stream=_stream_name(
                transport.stream or f"SSMD_{env_var_token(environment.name)}", extra_feed
            ),
            subject_prefix=f"{environment.name}.{feed_doc.name}",
            retention=parse_duration(transport.retention),
            duplicate_window=parse_duration(transport.duplicate_window),
            replicas=transport.replicas,
        ),
        raw_store=_store(spec.storage.raw, data_dir, s3_endpoint),
        normalized_store=_store(spec.storage.normalized, data_dir, s3_endpoint),
        symbols=capture.symbols,
        schedule=spec.schedule,
        limits=feed_doc.spec.limits,
        redis_url=redis_url,
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_namespace=temporal.namespace if temporal else "default",
        temporal_embedded=embedded_temporal,
        secrets={
            k: Secret(k, ref, item.file, environ, environment.name)
            for k, ref in spec.secrets.items()
        },
        sources=picker.sources,
        feeds=tuple(c.feed.name for c in captures),
        extra_feed=extra_feed,
    )


def _captures(spec: EnvironmentSpec) -> list[VenueCapture]:
    """Every feed the environment captures with its symbols: spec.feed first."""
    return [VenueCapture(feed=spec.feed, symbols=spec.symbols), *spec.venues]


def _capture(captures: list[VenueCapture], feed: str, env_file: str, env: str) -> VenueCapture:
    for capture in captures:
        if capture.feed.name == feed:
            return capture
    known = ", ".join(c.feed.name for c in captures)
    raise ConfigError(
        f"{env_file}: environment {env!r} does not capture feed {feed!r} (it captures {known}). "
        f"Fix: --feed one of {known}, or add the venue under spec.venues"
    )


def _stream_name(stream: str, extra_feed: str | None) -> str:
    """The environment's stream holds spec.feed; each of spec.venues has its own beside it
    (a stream per environment and feed keeps each venue's retention and consumers apart)."""
    return stream if extra_feed is None else f"{stream}_{env_var_token(extra_feed)}"
