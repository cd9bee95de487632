"""The one way commands change the tree: build, validate the whole result, then write.

A change is refused when the files it writes have any problem, or when it
introduces a problem anywhere else (e.g. removing a channel an environment
uses). Problems that were already there elsewhere do not block it, so a broken
file never prevents fixing another. Nothing is written unless everything passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ssmd.config.models import KINDS, Document
from ssmd.config.problems import (
    display_path,
    format_problems,
    problems_from_validation,
    raise_problems,
)
from ssmd.config.tree import (
    ConfigTree,
    Loaded,
    Snapshot,
    load_snapshot,
    parse_document,
    read_config_file,
)
from ssmd.config.validate import check_loaded, check_snapshot
from ssmd.config.yamlio import dump_document, write_atomically
from ssmd.exceptions import ConfigError

D = TypeVar("D", bound=Document)


def build(model: type[D], data: Any, path: Path) -> D:
    """Validate data assembled by a command (no file yet, so no line numbers)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise_problems(
            problems_from_validation(error, model, display_path(path), lambda _loc: None)
        )


def render(document: Document) -> str:
    return dump_document(document, KINDS[document.kind][2])


def load_one(tree: ConfigTree, kind: str, name: str) -> Loaded[Document]:
    """One document by name; ConfigError naming the known names, or the file's problems."""
    tree.require()
    path = tree.path(kind, name)
    if not path.exists() and not path.is_symlink():
        folder = tree.folder(kind)
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ConfigError(
            f"{display_path(path)}: no {kind.lower()} named {name!r}; expected one of: "
            f"{', '.join(known) or 'none yet'}. Fix: check the name or create it first"
        )
    text, unreadable = read_config_file(path)
    if unreadable is not None:
        raise_problems([unreadable])
    assert text is not None
    loaded, problems = parse_document(text, path, KINDS[kind][0])
    if loaded is None:
        raise_problems(problems)
    return loaded


def load_checked(tree: ConfigTree, kind: str, name: str) -> Loaded[Document]:
    """One document by name, refused while its file has any problem `ssmd validate`
    reports, references to other files included (an environment naming no feed)."""
    item = load_one(tree, kind, name)
    _, problems = check_snapshot(Snapshot.read(tree))
    mine = [p for p in problems if p.file == item.file]
    if mine:
        raise_problems(mine)
    return item


def load_kind(tree: ConfigTree, kind: str) -> tuple[list[Loaded[Document]], int]:
    """Every readable document of one kind, and how many files of that folder had problems."""
    loaded = load_snapshot(Snapshot.read(tree.require()))
    folder = display_path(tree.folder(kind))
    broken = {p.file for p in loaded.problems if p.file.startswith(folder)}
    return [loaded.by_kind(kind)[name] for name in sorted(loaded.by_kind(kind))], len(broken)


def apply_changes(tree: ConfigTree, changes: Mapping[Path, str]) -> None:
    """Write `changes` (path -> new text) if the resulting tree stays valid enough; else ConfigError."""
    before = Snapshot.read(tree.require())
    _, old_problems = check_snapshot(before)
    after = before.with_files(changes)
    loaded = load_snapshot(after)
    new_problems = check_loaded(loaded)
    known = {p.key() for p in old_problems}
    touched = {display_path(p) for p in changes}
    blocking = [p for p in new_problems if p.file in touched or p.key() not in known]
    if blocking:
        raise ConfigError("nothing was written: " + format_problems(blocking))
    write_atomically(changes)
