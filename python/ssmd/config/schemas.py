"""Schema registry operations behind `ssmd schema ...`: register, list, show, set-status, hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from ssmd.config.edit import apply_changes, build, load_kind, load_one, render
from ssmd.config.hashing import DEFAULT_SCHEMA_FILE, hash_file, schema_file
from ssmd.config.models import API_VERSION, SchemaEntry
from ssmd.config.models.schema_entry import SchemaStatus, SchemaVersion
from ssmd.config.problems import display_path
from ssmd.config.tree import ConfigTree, Loaded
from ssmd.exceptions import ConfigError


def schema_hash(tree: ConfigTree, file: str | Path | None = None) -> tuple[Path, str]:
    """Hash of a schema file (default: the ssmd.capnp shipped with ssmd)."""
    path = Path(file) if file is not None else schema_file(tree.project_root, DEFAULT_SCHEMA_FILE)
    return path, hash_file(path)


def _set_active(versions: list[dict[str, Any]], index: int) -> None:
    # Only one version is active: activating one retires the previous active one.
    for other, version in enumerate(versions):
        if other != index and version["status"] == "active":
            version["status"] = "deprecated"
    versions[index]["status"] = "active"


def register_schema(
    tree: ConfigTree,
    record_type: str,
    *,
    version: str | None = None,
    status: SchemaStatus = "draft",
    file: str | None = None,
    description: str | None = None,
) -> SchemaEntry:
    """Record the current content of the schema file as a new version of `record_type`.

    Creates schemas/<record_type>.yaml when absent (version v1); otherwise appends
    the next version. Registering content identical to the latest version is refused.
    """
    tree.require()
    path = tree.path("Schema", record_type)
    if path.exists():
        current = cast(Loaded[SchemaEntry], load_one(tree, "Schema", record_type)).document
        data = current.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if file is not None:
            data["spec"]["file"] = file
        if description is not None:
            data["spec"]["description"] = description
        latest = current.latest
        next_version = f"v{int(latest.version[1:]) + 1}"
    else:
        data = {
            "apiVersion": API_VERSION,
            "kind": "Schema",
            "metadata": {"name": record_type},
            "spec": {
                "file": file or DEFAULT_SCHEMA_FILE,
                **({"description": description} if description else {}),
                "versions": [],
            },
        }
        latest = None
        next_version = "v1"
    digest = hash_file(schema_file(tree.project_root, data["spec"]["file"]))
    if latest is not None and latest.hash == digest and latest.status != "deprecated":
        raise ConfigError(
            f"{display_path(path)}: {latest.version} already records this content ({digest}); "
            f"expected a changed schema file. Fix: edit {data['spec']['file']} first, or "
            f"use `ssmd schema set-status {record_type} STATUS`"
        )
    versions: list[dict[str, Any]] = data["spec"]["versions"]
    versions.append({"version": version or next_version, "status": "draft", "hash": digest})
    if status == "active":
        _set_active(versions, len(versions) - 1)
    else:
        versions[-1]["status"] = status
    entry = build(SchemaEntry, data, path)
    apply_changes(tree, {path: render(entry)})
    return entry


def list_schemas(tree: ConfigTree) -> tuple[list[Loaded[SchemaEntry]], int]:
    items, broken = load_kind(tree, "Schema")
    return cast(list[Loaded[SchemaEntry]], items), broken


def get_schema(tree: ConfigTree, name: str) -> Loaded[SchemaEntry]:
    return cast(Loaded[SchemaEntry], load_one(tree, "Schema", name))


def set_schema_status(
    tree: ConfigTree, name: str, status: SchemaStatus, *, version: str | None = None
) -> SchemaVersion:
    """Change a version's status (default: the latest); activating deprecates the old active one."""
    current = get_schema(tree, name)
    data = current.document.model_dump(mode="json", by_alias=True, exclude_unset=True)
    versions: list[dict[str, Any]] = data["spec"]["versions"]
    wanted = version or versions[-1]["version"]
    index = next((i for i, v in enumerate(versions) if v["version"] == wanted), None)
    if index is None:
        known = ", ".join(v["version"] for v in versions)
        raise ConfigError(
            f"{current.file}: spec.versions: no version {wanted!r}; expected one of {known}. "
            "Fix: pass --version with an existing version"
        )
    if status == "active":
        _set_active(versions, index)
    else:
        versions[index]["status"] = status
    entry = build(SchemaEntry, data, current.path)
    apply_changes(tree, {current.path: render(entry)})
    return entry.spec.versions[index]
