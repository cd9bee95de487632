"""The schema registry's content hash: "sha256:" + hex sha256 of a file's bytes.

A registry entry names its schema file. `schemas/ssmd.capnp` (the default) is
the schema shipped inside the ssmd package (ssmd.schemas), wherever the config
tree lives; any other name is a file of the user's, relative to the project
root (the config tree's parent).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ssmd import schemas as packaged
from ssmd.config.problems import Problem, display_path, raise_problems

DEFAULT_SCHEMA_FILE = "schemas/ssmd.capnp"


def schema_file(project_root: Path, name: str) -> Path:
    """The file a registry entry's `spec.file` names (see the module docstring)."""
    if name == DEFAULT_SCHEMA_FILE:
        return packaged.CAPNP_FILE
    return project_root / name


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
                    "check the path (other than schemas/ssmd.capnp, schema files are relative to the project root)",
                )
            ]
        )
