"""Environment operations behind `ssmd env ...`: create, list, show, update."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import yaml

from ssmd.config.edit import apply_changes, build, load_checked, load_kind, load_one, render
from ssmd.config.models import API_VERSION, Environment
from ssmd.config.problems import display_path
from ssmd.config.tree import ConfigTree, Loaded
from ssmd.exceptions import ConfigError

_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec")


def storage_location(
    text: str, *, endpoint: str | None = None, region: str | None = None
) -> dict[str, Any]:
    """`s3://bucket` -> an S3 location; anything else is a local directory."""
    if text.startswith("s3://"):
        location: dict[str, Any] = {"bucket": text.removeprefix("s3://").strip("/")}
        if endpoint:
            location["endpoint"] = endpoint
        if region:
            location["region"] = region
        return location
    return {"path": text}


def create_environment(
    tree: ConfigTree,
    name: str,
    *,
    feed: str,
    endpoint: str,
    ws_url: str | None = None,
    rest_url: str | None = None,
    channels: Sequence[str] = (),
    nats_url: str = "embedded",
    tickers: Sequence[str] = (),
    series: Sequence[str] = (),
    categories: Sequence[str] = (),
    sync: bool | None = None,
    timezone: str | None = None,
    raw: str = "raw",
    normalized: str = "normalized",
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    secrets: Mapping[str, str] | None = None,
    description: str | None = None,
) -> Environment:
    """Write environments/<name>.yaml; refuses to overwrite. `sync` defaults to on when series/categories are given."""
    path = tree.path("Environment", name)
    if path.exists():
        raise ConfigError(
            f"{display_path(path)}: environment {name!r} already exists; expected a new name. "
            "Fix: choose another name or use `ssmd env update`"
        )
    feed_part: dict[str, Any] = {"name": feed, "endpoint": endpoint}
    for key, value in (("ws_url", ws_url), ("rest_url", rest_url)):
        if value:
            feed_part[key] = value
    if channels:
        feed_part["channels"] = list(channels)
    symbols: dict[str, Any] = {
        key: list(values)
        for key, values in (("tickers", tickers), ("series", series), ("categories", categories))
        if values
    }
    symbols["sync"] = bool(series or categories) if sync is None else sync
    spec: dict[str, Any] = {"feed": feed_part}
    if timezone:
        spec["schedule"] = {"timezone": timezone}
    spec |= {
        "symbols": symbols,
        "transport": {"nats_url": nats_url},
        "storage": {
            "raw": storage_location(raw, endpoint=s3_endpoint, region=s3_region),
            "normalized": storage_location(normalized, endpoint=s3_endpoint, region=s3_region),
        },
    }
    if secrets:
        spec["secrets"] = dict(secrets)
    metadata: dict[str, Any] = {
        "name": name,
        **({"description": description} if description else {}),
    }
    data = {"apiVersion": API_VERSION, "kind": "Environment", "metadata": metadata, "spec": spec}
    environment = build(Environment, data, path)
    apply_changes(tree, {path: render(environment)})
    return environment


def list_environments(tree: ConfigTree) -> tuple[list[Loaded[Environment]], int]:
    items, broken = load_kind(tree, "Environment")
    return cast(list[Loaded[Environment]], items), broken


def get_environment(tree: ConfigTree, name: str) -> Loaded[Environment]:
    """The environment as written; ConfigError while its file has problems (a feed that
    does not exist among them), as `ssmd validate` reports them."""
    return cast(Loaded[Environment], load_checked(tree, "Environment", name))


def _split(path: str) -> list[str | int]:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".") if p]
    if not parts:
        raise ConfigError(
            f"empty field path {path!r}; expected e.g. spec.transport.retention. Fix: name a field"
        )
    if parts[0] not in _TOP_LEVEL:
        parts.insert(0, "spec")  # `transport.retention` means spec.transport.retention
    return parts


def _descend(data: Any, parts: Sequence[str | int], path: str, create: bool) -> Any:
    node = data
    for part in parts:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and (part in node or create):
            node = node.setdefault(part, {}) if create else node[part]
        else:
            raise ConfigError(
                f"field {path!r} does not exist (stopped at {part!r}); expected a path such as "
                "spec.transport.retention. Fix: check `ssmd env show NAME` for the field names"
            )
    return node


def _slot(container: Any, last: str | int) -> tuple[dict[Any, Any] | list[Any], Any] | None:
    """The container and key/index a path ends at, if that slot can exist."""
    if isinstance(container, dict):
        return container, last
    if isinstance(container, list) and isinstance(last, int) and 0 <= last < len(container):
        return container, last
    return None


def set_field(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = _split(path)
    slot = _slot(_descend(data, parents, path, create=True), last)
    if slot is None:
        raise ConfigError(
            f"cannot set {path!r}: its parent is not a mapping; expected a mapping field. "
            "Fix: set the parent field instead"
        )
    container, key = slot
    container[key] = value


def unset_field(data: dict[str, Any], path: str) -> None:
    *parents, last = _split(path)
    slot = _slot(_descend(data, parents, path, create=False), last)
    if slot is None or (isinstance(slot[0], dict) and last not in slot[0]):
        raise ConfigError(
            f"field {path!r} is not set; expected an existing field. Fix: check the path"
        )
    container, key = slot
    del container[key]


def parse_assignment(text: str) -> tuple[str, Any]:
    """`path=value`; the value is read as YAML, so 72h is text, 3 a number, [A, B] a list."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(
            f"{text!r} is not an assignment; expected FIELD=VALUE such as transport.retention=72h. "
            "Fix: add '=' and a value"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(
            f"value of {path!r} is not valid YAML ({error}); expected a scalar or a flow list "
            "such as [A, B]. Fix: quote the value"
        ) from None
    return path.strip(), value


def update_environment(
    tree: ConfigTree, name: str, *, assignments: Sequence[str] = (), unset: Sequence[str] = ()
) -> Environment:
    """Apply `FIELD=VALUE` assignments and removals, validate, and rewrite the file."""
    # Not get_environment: an update is how a broken reference gets repaired.
    current = cast(Loaded[Environment], load_one(tree, "Environment", name))
    data = current.document.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for path in unset:
        unset_field(data, path)
    for text in assignments:
        set_field(data, *parse_assignment(text))
    environment = build(Environment, data, current.path)
    apply_changes(tree, {current.path: render(environment)})
    return environment
