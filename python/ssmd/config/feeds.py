"""Feed operations behind `ssmd feed ...`: create, list, show, add-version."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from ssmd.config.edit import apply_changes, build, load_kind, load_one, render
from ssmd.config.models import API_VERSION, Feed
from ssmd.config.models.feed import FeedVersion
from ssmd.config.problems import display_path
from ssmd.config.tree import ConfigTree, Loaded
from ssmd.exceptions import ConfigError


def create_feed(
    tree: ConfigTree,
    name: str,
    *,
    ws_url: str,
    rest_url: str,
    endpoint: str = "prod",
    channels: list[tuple[str, str | None]],
    read_tokens_per_second: int = 200,
    effective_from: date,
    display_name: str | None = None,
) -> Feed:
    """Write feeds/<name>.yaml with one endpoint set and version v1; refuses to overwrite."""
    path = tree.path("Feed", name)
    if path.exists():
        raise ConfigError(
            f"{display_path(path)}: feed {name!r} already exists; expected a new name. "
            "Fix: choose another name, or edit the file / use `ssmd feed add-version`"
        )
    spec: dict[str, Any] = {
        "endpoints": {endpoint: {"ws_url": ws_url, "rest_url": rest_url}},
        "channels": [{"name": c, **({"record_type": t} if t else {})} for c, t in channels],
        "limits": {"rest": {"read": {"tokens_per_second": read_tokens_per_second}}},
        "versions": [{"version": "v1", "effective_from": effective_from.isoformat()}],
    }
    if display_name:
        spec = {"display_name": display_name, **spec}
    data = {"apiVersion": API_VERSION, "kind": "Feed", "metadata": {"name": name}, "spec": spec}
    feed = build(Feed, data, path)
    apply_changes(tree, {path: render(feed)})
    return feed


def list_feeds(tree: ConfigTree) -> tuple[list[Loaded[Feed]], int]:
    items, broken = load_kind(tree, "Feed")
    return cast(list[Loaded[Feed]], items), broken


def get_feed(tree: ConfigTree, name: str) -> Loaded[Feed]:
    return cast(Loaded[Feed], load_one(tree, "Feed", name))


def add_feed_version(
    tree: ConfigTree,
    name: str,
    *,
    effective_from: date,
    version: str | None = None,
    description: str | None = None,
) -> FeedVersion:
    """Append a protocol version (default: the next number) that starts on `effective_from`."""
    current = get_feed(tree, name)
    feed = current.document
    number = int(feed.spec.versions[-1].version[1:]) + 1
    entry: dict[str, Any] = {
        "version": version or f"v{number}",
        "effective_from": effective_from.isoformat(),
    }
    if description:
        entry["description"] = description
    data = feed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["spec"]["versions"].append(entry)
    updated = build(Feed, data, current.path)
    apply_changes(tree, {current.path: render(updated)})
    return updated.spec.versions[-1]
