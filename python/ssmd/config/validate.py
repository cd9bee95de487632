"""Whole-tree validation: every file parses, and the files agree with each other.

`check_snapshot` returns every problem at once (it never stops at the first):
syntax and type errors per file, then rules that need more than one field or
more than one file: feed versions ordered, endpoints and channels that exist,
schema hashes equal to the schema files, complete storage and transport
settings, well-formed secret references.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ssmd.config.hashing import hash_bytes, schema_file
from ssmd.config.models import RECORD_TYPES, parse_duration
from ssmd.config.models.environment import (
    EMBEDDED_NATS,
    Environment,
    FeedSelection,
    S3Storage,
    Symbols,
)
from ssmd.config.models.feed import CUSTOM_ENDPOINT, Feed
from ssmd.config.models.schema_entry import SchemaEntry
from ssmd.config.problems import Loc, Problem, unique_problems
from ssmd.config.tree import ConfigTree, Loaded, LoadedTree, Snapshot, load_snapshot


def _duplicates(values: Iterable[str]) -> dict[int, str]:
    """Index -> value for every repeat after the first occurrence."""
    seen: set[str] = set()
    repeats = {}
    for index, value in enumerate(values):
        if value in seen:
            repeats[index] = value
        seen.add(value)
    return repeats


def _version_number(version: str) -> int:
    return int(version[1:])


def check_feed(item: Loaded[Feed]) -> list[Problem]:
    spec = item.document.spec
    problems = []
    if CUSTOM_ENDPOINT in spec.endpoints:
        problems.append(
            item.problem(
                ("spec", "endpoints", CUSTOM_ENDPOINT),
                "the endpoint name 'custom' is reserved",
                "another name such as prod or demo",
                "rename the endpoint set",
            )
        )
    for index, name in _duplicates(c.name for c in spec.channels).items():
        problems.append(
            item.problem(
                ("spec", "channels", index, "name"),
                f"duplicate channel {name!r}",
                "each channel once",
                "delete the repeated entry",
            )
        )
    for index, name in _duplicates(v.version for v in spec.versions).items():
        problems.append(
            item.problem(
                ("spec", "versions", index, "version"),
                f"duplicate version {name!r}",
                "each version once",
                "give the new version the next number",
            )
        )
    for index in range(1, len(spec.versions)):
        before, after = spec.versions[index - 1], spec.versions[index]
        if after.effective_from <= before.effective_from:
            problems.append(
                item.problem(
                    ("spec", "versions", index, "effective_from"),
                    f"{after.version} starts on {after.effective_from}, not after {before.version} ({before.effective_from})",
                    "versions listed oldest first with strictly later effective_from dates",
                    "reorder the versions or correct the date",
                )
            )
        if _version_number(after.version) <= _version_number(before.version):
            problems.append(
                item.problem(
                    ("spec", "versions", index, "version"),
                    f"{after.version} follows {before.version}",
                    "increasing version numbers (v1, v2, ...)",
                    "renumber the versions oldest first",
                )
            )
    ws = spec.limits.ws
    if ws.subscribe_batch > ws.markets_per_connection:
        problems.append(
            item.problem(
                ("spec", "limits", "ws", "subscribe_batch"),
                f"batch {ws.subscribe_batch} exceeds markets_per_connection {ws.markets_per_connection}",
                "subscribe_batch <= markets_per_connection",
                "lower subscribe_batch",
            )
        )
    if parse_duration(ws.stale_after) <= parse_duration(ws.ping_interval):
        problems.append(
            item.problem(
                ("spec", "limits", "ws", "stale_after"),
                f"stale_after {ws.stale_after} is not longer than ping_interval {ws.ping_interval}",
                "stale_after > ping_interval (a healthy idle connection must not look dead)",
                "raise stale_after, e.g. to 3 x ping_interval",
            )
        )
    return problems


def check_schema_entry(
    item: Loaded[SchemaEntry], project_root: Path, hashes: dict[Path, str | None]
) -> list[Problem]:
    entry = item.document
    problems = []
    if entry.name not in RECORD_TYPES:
        problems.append(
            item.problem(
                ("metadata", "name"),
                f"{entry.name!r} is not a normalized record type",
                "one of " + ", ".join(RECORD_TYPES),
                "rename the entry and its file",
            )
        )
    for index, name in _duplicates(v.version for v in entry.spec.versions).items():
        problems.append(
            item.problem(
                ("spec", "versions", index, "version"),
                f"duplicate version {name!r}",
                "each version once",
                "delete the repeated entry",
            )
        )
    for index in range(1, len(entry.spec.versions)):
        before, after = entry.spec.versions[index - 1], entry.spec.versions[index]
        if _version_number(after.version) <= _version_number(before.version):
            problems.append(
                item.problem(
                    ("spec", "versions", index, "version"),
                    f"{after.version} follows {before.version}",
                    "increasing version numbers, oldest first",
                    "renumber the versions",
                )
            )
    actives = [i for i, v in enumerate(entry.spec.versions) if v.status == "active"]
    for index in actives[1:]:
        problems.append(
            item.problem(
                ("spec", "versions", index, "status"),
                "more than one active version",
                "at most one active version",
                f"run `ssmd schema set-status {entry.name} deprecated --version {entry.spec.versions[actives[0]].version}`",
            )
        )
    path = schema_file(project_root, entry.spec.file)
    if path not in hashes:
        hashes[path] = hash_bytes(path.read_bytes()) if path.is_file() else None
    actual = hashes[path]
    if actual is None:
        problems.append(
            item.problem(
                ("spec", "file"),
                f"schema file {entry.spec.file!r} not found under {project_root}",
                "schemas/ssmd.capnp (the schema shipped with ssmd) or a path relative to the project root",
                "correct the path or restore the file",
            )
        )
        return problems
    for index, version in enumerate(entry.spec.versions):
        if version.status != "deprecated" and version.hash != actual:
            problems.append(
                item.problem(
                    ("spec", "versions", index, "hash"),
                    f"{version.version} ({version.status}) records {version.hash[:19]}... but {entry.spec.file} is now {actual[:19]}...",
                    f"the hash of the current file ({actual})",
                    f"if the schema change is intended run `ssmd schema register {entry.name} --version "
                    f"v{_version_number(entry.latest.version) + 1} --status active`; otherwise restore {entry.spec.file}",
                )
            )
    return problems


def _check_selection(
    item: Loaded[Environment], loaded: LoadedTree, selection: FeedSelection, at: Loc
) -> list[Problem]:
    """A feed selection (spec.feed, or spec.venues[i].feed at `at`)."""
    problems = []
    feeds = loaded.feeds
    feed = feeds.get(selection.name)
    # A feed file that exists but does not parse is reported on its own; no echo here.
    if feed is None and loaded.tree.path("Feed", selection.name) not in loaded.unreadable:
        known = ", ".join(sorted(feeds)) or "none yet"
        problems.append(
            item.problem(
                (*at, "name"),
                f"feed {selection.name!r} does not exist",
                f"a feed under feeds/ (known: {known})",
                f"fix the name or create it with `ssmd feed create {selection.name}`",
            )
        )
    if selection.endpoint == CUSTOM_ENDPOINT:
        for key in ("ws_url", "rest_url"):
            if getattr(selection, key) is None:
                problems.append(
                    item.problem(
                        at,
                        f"endpoint: custom needs {key}",
                        f"{key} under {'.'.join(map(str, at))}",
                        f"add `{key}:` or choose a named endpoint",
                    )
                )
    else:
        for key in ("ws_url", "rest_url"):
            if getattr(selection, key) is not None:
                problems.append(
                    item.problem(
                        (*at, key),
                        f"{key} is only read with endpoint: custom",
                        "no URL next to a named endpoint",
                        "remove it, or set endpoint: custom (or override with SSMD_<FEED>_* variables)",
                    )
                )
        if feed is not None and selection.endpoint not in feed.document.spec.endpoints:
            known = ", ".join([*feed.document.spec.endpoints, CUSTOM_ENDPOINT])
            problems.append(
                item.problem(
                    (*at, "endpoint"),
                    f"feed {feed.document.name!r} has no endpoint set {selection.endpoint!r}",
                    f"one of {known}",
                    "choose one of those names",
                )
            )
    for index, name in enumerate(selection.channels or []):
        if feed is not None and feed.document.channel(name) is None:
            known = ", ".join(c.name for c in feed.document.spec.channels)
            problems.append(
                item.problem(
                    (*at, "channels", index),
                    f"feed has no channel {name!r}",
                    f"one of {known}",
                    "fix the name or remove it",
                )
            )
    for index, name in _duplicates(selection.channels or []).items():
        problems.append(
            item.problem(
                (*at, "channels", index),
                f"duplicate channel {name!r}",
                "each channel once",
                "delete the repeated entry",
            )
        )
    return problems


def _check_symbols(item: Loaded[Environment], symbols: Symbols, at: Loc) -> list[Problem]:
    problems = []
    if not (symbols.tickers or symbols.series or symbols.categories):
        problems.append(
            item.problem(
                at,
                "no markets selected",
                "at least one of tickers, series or categories",
                "add tickers or a series",
            )
        )
    if (symbols.series or symbols.categories) and not symbols.sync:
        problems.append(
            item.problem(
                (*at, "sync"),
                "series and categories are only expanded by the sync",
                "sync: true when series or categories are listed",
                "set sync: true, or list explicit tickers only",
            )
        )
    for index, ticker in _duplicates(symbols.tickers).items():
        problems.append(
            item.problem(
                (*at, "tickers", index),
                f"duplicate ticker {ticker!r}",
                "each ticker once",
                "delete the repeated entry",
            )
        )
    return problems


def check_environment(item: Loaded[Environment], loaded: LoadedTree) -> list[Problem]:
    spec = item.document.spec
    problems = _check_selection(item, loaded, spec.feed, ("spec", "feed"))
    problems += _check_symbols(item, spec.symbols, ("spec", "symbols"))
    seen = {spec.feed.name}
    for index, venue in enumerate(spec.venues):
        at = ("spec", "venues", index)
        problems += _check_selection(item, loaded, venue.feed, (*at, "feed"))
        problems += _check_symbols(item, venue.symbols, (*at, "symbols"))
        if venue.feed.name in seen:
            problems.append(
                item.problem(
                    (*at, "feed", "name"),
                    f"feed {venue.feed.name!r} is captured twice",
                    "each feed once per environment (spec.feed and spec.venues)",
                    "delete the repeated venue, or capture it in another environment",
                )
            )
        seen.add(venue.feed.name)

    schedule = spec.schedule
    if schedule.startup is not None and schedule.startup == schedule.teardown:
        problems.append(
            item.problem(
                ("spec", "schedule", "teardown"),
                "teardown equals startup",
                "different times, or neither (run continuously)",
                "change or remove one",
            )
        )

    transport = spec.transport
    retention, window = (
        parse_duration(transport.retention),
        parse_duration(transport.duplicate_window),
    )
    if retention.total_seconds() <= 0:
        problems.append(
            item.problem(
                ("spec", "transport", "retention"),
                "retention is zero",
                "a positive duration such as 48h",
                "set retention",
            )
        )
    if window > retention:
        problems.append(
            item.problem(
                ("spec", "transport", "duplicate_window"),
                f"duplicate window {transport.duplicate_window} exceeds retention {transport.retention}",
                "duplicate_window <= retention",
                "shorten duplicate_window (2m is typical)",
            )
        )
    if transport.nats_url == EMBEDDED_NATS and transport.replicas > 1:
        problems.append(
            item.problem(
                ("spec", "transport", "replicas"),
                "an embedded NATS server has one node",
                "replicas: 1 with nats_url: embedded",
                "set replicas: 1 or point at a cluster",
            )
        )

    problems.extend(_check_tenants(item, loaded))

    for kind in ("raw", "normalized"):
        location = getattr(spec.storage, kind)
        if (
            isinstance(location, S3Storage)
            and location.endpoint is None
            and location.region is None
        ):
            problems.append(
                item.problem(
                    ("spec", "storage", kind),
                    "S3 storage without endpoint or region",
                    "endpoint (S3-compatible store) or region (AWS)",
                    "add `region: us-east-1` or `endpoint: https://...`",
                )
            )
    return problems


def _check_tenants(item: Loaded[Environment], loaded: LoadedTree) -> list[Problem]:
    """Tenants name declared secrets and transforms; every Lua script compiles and runs
    in its sandbox (a syntax error is reported with its line)."""
    from ssmd.exceptions import ConfigError
    from ssmd.gateway.transform import check, load_spec

    spec = item.document.spec
    problems = []
    owners: dict[str, str] = {}
    for name, tenant in spec.tenants.items():
        if tenant.api_keys not in spec.secrets:
            known = ", ".join(sorted(spec.secrets)) or "none"
            problems.append(
                item.problem(
                    ("spec", "tenants", name, "api_keys"),
                    f"tenant {name}: no secret {tenant.api_keys!r} under spec.secrets (declared: {known})",
                    "the name of a secret holding the tenant's key lines",
                    f"add `{tenant.api_keys}: file:/path` (or env:VAR) under spec.secrets",
                )
            )
        if tenant.api_keys == "gateway_api_keys":
            problems.append(
                item.problem(
                    ("spec", "tenants", name, "api_keys"),
                    f"tenant {name}: gateway_api_keys holds the operator's keys, which see every tenant",
                    "a secret of the tenant's own",
                    f"declare e.g. `{name.replace('-', '_')}_keys: file:/path` and name it here",
                )
            )
        elif tenant.api_keys in owners:
            problems.append(
                item.problem(
                    ("spec", "tenants", name, "api_keys"),
                    f"tenants {owners[tenant.api_keys]} and {name} share the secret {tenant.api_keys}",
                    "one secret per tenant",
                    "give each tenant its own secret",
                )
            )
        owners.setdefault(tenant.api_keys, name)
        if tenant.transform is not None and tenant.transform not in spec.transforms:
            known = ", ".join(sorted(spec.transforms)) or "none"
            problems.append(
                item.problem(
                    ("spec", "tenants", name, "transform"),
                    f"tenant {name}: no transform {tenant.transform!r} under spec.transforms (declared: {known})",
                    "the name of a transform under spec.transforms",
                    "declare it, or remove `transform:`",
                )
            )
    root = loaded.tree.root
    for name, transform in spec.transforms.items():
        loc = ("spec", "transforms", name, "script")
        where = f"spec.transforms.{name}.script"
        try:
            error = check(load_spec(name, transform, root, where))
        except ConfigError as exc:
            problems.append(
                item.problem(
                    loc,
                    str(exc).removeprefix(where + ": ").split(". Fix:")[0],
                    "a readable Lua file",
                    "create it, or give a path relative to the config dir",
                )
            )
            continue
        if error is not None:
            problems.append(
                item.problem(
                    loc,
                    f"the Lua script does not load: {error}",
                    "a Lua 5.4 script defining function transform(msg) (docs/transforms.md)",
                    "correct the script at the line named",
                )
            )
    return problems


def check_loaded(loaded: LoadedTree) -> list[Problem]:
    problems = list(loaded.problems)
    hashes: dict[Path, str | None] = {}
    for feed in loaded.feeds.values():
        problems.extend(check_feed(feed))
    for entry in loaded.schemas.values():
        problems.extend(check_schema_entry(entry, loaded.tree.project_root, hashes))
    for environment in loaded.environments.values():
        problems.extend(check_environment(environment, loaded))
    return unique_problems(problems)


def check_snapshot(snapshot: Snapshot) -> tuple[LoadedTree, list[Problem]]:
    loaded = load_snapshot(snapshot)
    return loaded, check_loaded(loaded)


def validate_tree(config_dir: str | Path | None = None) -> list[Problem]:
    """Every problem in the tree, in file order; an empty list means valid."""
    tree = ConfigTree.at(config_dir).require()
    _, problems = check_snapshot(Snapshot.read(tree))
    return problems
