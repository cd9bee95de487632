"""Schema registry entry: one normalized record type (exchanges/schemas/<type>.yaml).

Each entry points at the Cap'n Proto file that defines the type and records,
per version, the sha256 of that file's content. A draft or active version must
match the file as it is now; deprecated versions are history and keep the hash
of the content they were registered with.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from ssmd.config.models.common import Document, StrictModel, Version

SchemaStatus = Literal["draft", "active", "deprecated"]
SCHEMA_STATUSES = ("draft", "active", "deprecated")

HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
SchemaHash = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]


class SchemaVersion(StrictModel):
    version: Version
    status: SchemaStatus
    hash: SchemaHash = Field(description='"sha256:" + hex sha256 of the schema file bytes.')


class SchemaSpec(StrictModel):
    format: Literal["capnp"] = "capnp"
    file: str = Field(
        min_length=1,
        description="Schema file, relative to the project root (the config dir's parent).",
    )
    struct: str = Field(default="Record", description="Root struct of every message.")
    description: str | None = None
    versions: list[SchemaVersion] = Field(min_length=1, description="Oldest first.")


class SchemaEntry(Document):
    kind: Literal["Schema"]
    spec: SchemaSpec

    @property
    def latest(self) -> SchemaVersion:
        return self.spec.versions[-1]

    @property
    def active(self) -> SchemaVersion | None:
        return next((v for v in self.spec.versions if v.status == "active"), None)
