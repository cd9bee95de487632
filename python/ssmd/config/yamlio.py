"""YAML in and out: parsing that remembers line numbers, canonical dumping, atomic writes.

Parsing goes through PyYAML's node graph so a field path (spec.feed.name) maps
back to the line it came from. Duplicate keys, which PyYAML would silently
collapse, are reported. Writing renders the model in field order, prefixed by a
modeline that points editors at the JSON Schema, and replaces files atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ssmd.config.models.common import Document
from ssmd.config.problems import Loc, Problem

SCHEMA_MODELINE = "# yaml-language-server: $schema=../schema/{schema}\n"


@dataclass(frozen=True)
class SourceMap:
    """Line lookup for a parsed document (1-based lines)."""

    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            # A key's own line is more useful than where its (possibly nested) value starts.
            line = (key_node or node).start_mark.line + 1
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return None, node.value[part]
    return None


def _duplicate_keys(node: yaml.Node, path: Loc, file: str) -> list[Problem]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            line = key.start_mark.line + 1
            if name in seen:
                problems.append(
                    Problem(
                        file,
                        line,
                        ".".join(map(str, (*path, name))),
                        f"duplicate key {name!r} (first at line {seen[name]})",
                        "each key once per mapping",
                        "merge the two entries or delete one",
                    )
                )
            else:
                seen[name] = line
            problems.extend(_duplicate_keys(value, (*path, name), file))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, (*path, index), file))
    return problems


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[Problem]]:
    """Parse one YAML document; problems instead of exceptions."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problem = Problem(
            file,
            line,
            "",
            f"invalid YAML: {error.problem or error.context}",
            "well-formed YAML (one document)",
            "check indentation, quoting and the ':' after each key near that line",
        )
        return None, SourceMap(None), [problem]
    except yaml.YAMLError as error:
        return (
            None,
            SourceMap(None),
            [Problem(file, None, "", f"invalid YAML: {error}", "well-formed YAML", "fix the file")],
        )
    finally:
        loader.dispose()
    source = SourceMap(node)
    problems = _duplicate_keys(node, (), file) if node is not None else []
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        problems.append(
            Problem(
                file,
                source.line_of(()),
                "",
                f"the document is {got}",
                "a mapping with apiVersion, kind, metadata and spec",
                "start from a file made by `ssmd init` or a `create` command",
            )
        )
    return data, source, problems


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_document(document: Document, schema_file: str) -> str:
    """Canonical text of a document: keys in model order, only fields that were set."""
    data = document.model_dump(mode="json", by_alias=True, exclude_unset=True)
    body = yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, allow_unicode=True, width=100)
    return SCHEMA_MODELINE.format(schema=schema_file) + body


def write_atomically(files: Mapping[Path, str]) -> None:
    """Write every file, or none: all temporaries are written first, then renamed in."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((temp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        for temp, path in staged:
            os.replace(temp, path)
    finally:
        for temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
