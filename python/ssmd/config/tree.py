"""The config tree on disk (exchanges/) and loading every document in it.

Layout, relative to the config dir:
    feeds/<name>.yaml          kind: Feed
    schemas/<type>.yaml        kind: Schema (the schema registry)
    environments/<name>.yaml   kind: Environment
    schema/*.json              JSON Schemas for editors (generated)

The config dir is `--config-dir`, else $SSMD_CONFIG_DIR, else ./exchanges. Its
parent directory is the project root: schema files are named relative to it.

Reading goes through a `Snapshot` (every file's text, read once). Commands edit
a snapshot in memory, validate the result, and only then write, so a failing
command never leaves the tree half-changed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError

from ssmd.config.models import KINDS, Document, Environment, Feed, SchemaEntry
from ssmd.config.problems import (
    Loc,
    Problem,
    display_path,
    field_path,
    problems_from_validation,
    raise_problems,
)
from ssmd.config.yamlio import SourceMap, parse_yaml

CONFIG_DIR_ENV = "SSMD_CONFIG_DIR"
DEFAULT_CONFIG_DIR = "exchanges"

D = TypeVar("D", bound=Document)
D_co = TypeVar("D_co", bound=Document, covariant=True)


def default_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR)


@dataclass(frozen=True)
class ConfigTree:
    root: Path

    @classmethod
    def at(
        cls, config_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> ConfigTree:
        chosen = Path(config_dir) if config_dir is not None else default_config_dir(environ)
        return cls(chosen.expanduser().absolute())

    @property
    def project_root(self) -> Path:
        return self.root.parent

    @property
    def jsonschema_dir(self) -> Path:
        return self.root / "schema"

    def folder(self, kind: str) -> Path:
        return self.root / KINDS[kind][1]

    def path(self, kind: str, name: str) -> Path:
        return self.folder(kind) / f"{name}.yaml"

    def require(self) -> ConfigTree:
        if not self.root.is_dir():
            raise_problems(
                [
                    Problem(
                        display_path(self.root),
                        None,
                        "",
                        "config directory not found",
                        "a directory with feeds/, schemas/ and environments/",
                        f"run `ssmd init {display_path(self.root)}`, pass --config-dir or set {CONFIG_DIR_ENV}",
                    )
                ]
            )
        return self


def read_config_file(path: Path) -> tuple[str | None, Problem | None]:
    """The text of one config file, or the problem that keeps it from being read.

    Whatever is named like a config file must be one: a directory called x.yaml, a
    dangling link or bytes that are not UTF-8 are reported, never skipped or raised."""
    file = display_path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return None, Problem(
                file,
                None,
                "",
                "a directory, not a file",
                "a YAML file under that name",
                f"rename or move the directory out of {display_path(path.parent)}",
            )
        if not stat.S_ISREG(mode):
            return None, Problem(
                file, None, "", "not a regular file", "a YAML file", "replace it with a file"
            )
        data = path.read_bytes()
    except OSError as error:
        return None, Problem(
            file,
            None,
            "",
            f"cannot be read ({error.strerror or error})",
            "a readable YAML file",
            "fix the file's permissions or the link it is, or remove it",
        )
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, Problem(
            file,
            data.count(b"\n", 0, error.start) + 1,
            "",
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})",
            "a UTF-8 encoded file",
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        )


@dataclass(frozen=True)
class Snapshot:
    """The text of every YAML file of a tree, possibly with unsaved edits.

    `unreadable` holds the files that could not be read as text, with the reason."""

    tree: ConfigTree
    files: Mapping[Path, str]
    unreadable: Mapping[Path, Problem] = field(default_factory=dict)

    @classmethod
    def read(cls, tree: ConfigTree) -> Snapshot:
        files, unreadable = {}, {}
        for kind in KINDS:
            folder = tree.folder(kind)
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix not in (".yaml", ".yml"):
                        continue
                    text, problem = read_config_file(path)
                    if problem is not None:
                        unreadable[path] = problem
                    else:
                        assert text is not None
                        files[path] = text
        return cls(tree, files, unreadable)

    def with_files(self, changes: Mapping[Path, str]) -> Snapshot:
        unreadable = {p: pr for p, pr in self.unreadable.items() if p not in changes}
        return Snapshot(self.tree, {**self.files, **changes}, unreadable)


@dataclass(frozen=True)
class Loaded(Generic[D_co]):
    """A parsed document and where it came from."""

    path: Path
    document: D_co
    source: SourceMap

    @property
    def file(self) -> str:
        return display_path(self.path)

    def line(self, loc: Loc) -> int | None:
        return self.source.line_of(loc)

    def problem(self, loc: Loc, message: str, expected: str, fix: str) -> Problem:
        return Problem(self.file, self.line(loc), field_path(loc), message, expected, fix)


@dataclass
class LoadedTree:
    tree: ConfigTree
    feeds: dict[str, Loaded[Feed]] = field(default_factory=dict)
    schemas: dict[str, Loaded[SchemaEntry]] = field(default_factory=dict)
    environments: dict[str, Loaded[Environment]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unreadable: set[Path] = field(default_factory=set)  # files present but invalid

    def by_kind(self, kind: str) -> Mapping[str, Loaded[Document]]:
        table: dict[str, Mapping[str, Loaded[Document]]] = {
            "Feed": self.feeds,
            "Schema": self.schemas,
            "Environment": self.environments,
        }
        return table[kind]


def parse_document(text: str, path: Path, model: type[D]) -> tuple[Loaded[D] | None, list[Problem]]:
    """Parse and validate one file's text against its model."""
    file = display_path(path)
    data, source, problems = parse_yaml(text, file)
    if problems:
        return None, problems
    try:
        document = model.model_validate(data)
    except ValidationError as error:
        return None, problems_from_validation(error, model, file, source.line_of)
    return Loaded(path, document, source), []


def load_snapshot(snapshot: Snapshot) -> LoadedTree:
    """Parse every file; file-level problems (syntax, types, names) are collected, not raised."""
    loaded = LoadedTree(snapshot.tree)
    for kind, (model, folder, _) in KINDS.items():
        table = loaded.by_kind(kind)
        assert isinstance(table, dict)
        for path in sorted({*snapshot.files, *snapshot.unreadable}):
            if path.parent != snapshot.tree.root / folder:
                continue
            if path in snapshot.unreadable:
                loaded.problems.append(snapshot.unreadable[path])
                loaded.unreadable.add(path)
                continue
            text = snapshot.files[path]
            if path.suffix == ".yml":
                loaded.problems.append(
                    Problem(
                        display_path(path),
                        None,
                        "",
                        "file extension .yml is not read",
                        "files named <name>.yaml",
                        f"rename it to {path.stem}.yaml",
                    )
                )
                continue
            document, problems = parse_document(text, path, model)
            loaded.problems.extend(problems)
            if document is None:
                loaded.unreadable.add(path)
                continue
            name = document.document.name
            if name != path.stem:
                loaded.problems.append(
                    document.problem(
                        ("metadata", "name"),
                        f"name {name!r} does not match the file name {path.name!r}",
                        f"metadata.name: {path.stem}",
                        f"set metadata.name to {path.stem!r} or rename the file to {name}.yaml",
                    )
                )
            if name in table:
                other = table[name]
                loaded.problems.append(
                    document.problem(
                        ("metadata", "name"),
                        f"duplicate {kind} name {name!r} (also in {other.file})",
                        "each name in one file only",
                        "rename or delete one of the two files",
                    )
                )
                continue
            table[name] = document
    return loaded
