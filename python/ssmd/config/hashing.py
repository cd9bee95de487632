"""The schema registry's content hash: "sha256:" + hex sha256 of a file's bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ssmd.config.problems import Problem, display_path, raise_problems

DEFAULT_SCHEMA_FILE = "schemas/ssmd.capnp"


def hash_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_file(path: Path) -> str:
    """Hash a schema file; ConfigError if it cannot be read."""
    try:
        return hash_bytes(path.read_bytes())
    except OSError as error:
        raise_problems(
            [
                Problem(
                    display_path(path),
                    None,
                    "",
                    f"cannot read the schema file ({error.strerror})",
                    "an existing, readable file",
                    "check the path (schema files are relative to the project root)",
                )
            ]
        )
