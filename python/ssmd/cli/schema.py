"""`ssmd schema register|list|show|set-status|hash|path`: the schema registry (exchanges/schemas/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ssmd.cli.output import (
    ConfigDirOption,
    JsonOption,
    print_json,
    print_table,
    print_text,
    reporting,
    tree_at,
    warn_broken,
)
from ssmd.config.models.schema_entry import SchemaStatus
from ssmd.config.schemas import (
    get_schema,
    list_schemas,
    register_schema,
    schema_hash,
    set_schema_status,
)
from ssmd.schemas import CAPNP_FILE

app = typer.Typer(
    help="Schema registry: one entry per normalized record type.", no_args_is_help=True
)

StatusOption = Annotated[SchemaStatus, typer.Option(help="draft, active or deprecated.")]


@app.command("register")
def register(
    record_type: Annotated[
        str, typer.Argument(help="trade, orderbook, ticker, lifecycle, status or event.")
    ],
    version: Annotated[
        str | None, typer.Option(help="Version name (default: next number).")
    ] = None,
    status: StatusOption = "draft",
    file: Annotated[
        str | None,
        typer.Option(
            help="Schema file relative to the project root (default: schemas/ssmd.capnp, "
            "the schema shipped with ssmd)."
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the type holds.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the schema file's current hash as a new version (activating one deprecates the old).

    Example: ssmd schema register trade --status active
    """
    with reporting(as_json):
        entry = register_schema(
            tree_at(config_dir),
            record_type,
            version=version,
            status=status,
            file=file,
            description=description,
        )
        latest = entry.latest
        if as_json:
            print_json({"ok": True, "schema": entry.model_dump(mode="json", by_alias=True)})
        else:
            print_text(f"registered {record_type} {latest.version} ({latest.status}) {latest.hash}")


@app.command("list")
def list_command(config_dir: ConfigDirOption = None, as_json: JsonOption = False) -> None:
    """List the registry.

    Example: ssmd schema list
    """
    with reporting(as_json):
        entries, broken = list_schemas(tree_at(config_dir))
        if as_json:
            print_json(
                [
                    {
                        "name": e.document.name,
                        "file": e.document.spec.file,
                        "latest": e.document.latest.version,
                        "status": e.document.latest.status,
                        "hash": e.document.latest.hash,
                        "active": e.document.active.version if e.document.active else None,
                    }
                    for e in entries
                ]
            )
        else:
            print_table(
                "Schemas",
                ["type", "latest", "status", "active", "file", "hash"],
                [
                    (
                        e.document.name,
                        e.document.latest.version,
                        e.document.latest.status,
                        e.document.active.version if e.document.active else "-",
                        e.document.spec.file,
                        e.document.latest.hash[:19] + "...",
                    )
                    for e in entries
                ],
            )
        warn_broken(broken)


@app.command("show")
def show(
    record_type: Annotated[str, typer.Argument(help="Record type.")],
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one entry and its versions.

    Example: ssmd schema show orderbook --json
    """
    with reporting(as_json):
        entry = get_schema(tree_at(config_dir), record_type)
        if as_json:
            print_json(entry.document.model_dump(mode="json", by_alias=True))
            return
        spec = entry.document.spec
        print_text(
            f"{record_type}: {spec.description or ''} ({spec.format} {spec.file}, struct {spec.struct})"
        )
        print_table(
            "Versions",
            ["version", "status", "hash"],
            [(v.version, v.status, v.hash) for v in spec.versions],
        )


@app.command("set-status")
def set_status(
    record_type: Annotated[str, typer.Argument(help="Record type.")],
    status: Annotated[SchemaStatus, typer.Argument(help="draft, active or deprecated.")],
    version: Annotated[str | None, typer.Option(help="Version (default: the latest).")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a version's status.

    Example: ssmd schema set-status trade active --version v2
    """
    with reporting(as_json):
        changed = set_schema_status(tree_at(config_dir), record_type, status, version=version)
        if as_json:
            print_json({"ok": True, "version": changed.model_dump(mode="json")})
        else:
            print_text(f"{record_type} {changed.version} is now {changed.status}")


@app.command("hash")
def hash_command(
    file: Annotated[
        Path | None, typer.Argument(help="File (default: the schema shipped with ssmd).")
    ] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the registry hash ("sha256:" + hex) of a schema file.

    Example: ssmd schema hash schemas/ssmd.capnp
    """
    with reporting(as_json):
        path, digest = schema_hash(tree_at(config_dir), file)
        if as_json:
            print_json({"file": str(path), "hash": digest})
        else:
            print_text(digest)


@app.command("path")
def path_command() -> None:
    """Print where the schema shipped with ssmd (ssmd.capnp) is installed.

    Example: zstd -dc data.capnp.zst | capnp decode --packed $(ssmd schema path) Record
    """
    print_text(str(CAPNP_FILE))
