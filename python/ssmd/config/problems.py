"""Problems found in config files, and how they become one readable error.

A Problem names the file, the line where known, the field, what is wrong, what
was expected and how to fix it. Validation collects every problem before
reporting, so one run lists them all. Messages quote field values only from
config files, which hold secret *references*, never secret values.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ssmd.config.models.common import PATTERN_HINTS
from ssmd.exceptions import ConfigError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str
    expected: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}; expected {self.expected}. Fix: {self.fix}"

    def key(self) -> tuple[str, str, str]:
        """Identity that survives edits moving lines around (used to spot new problems)."""
        return (self.file, self.field, self.message)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def display_path(path: Path) -> str:
    """A path relative to the current directory when it is below it, else absolute."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:  # another drive on Windows
        return str(path)


def format_problems(problems: Sequence[Problem]) -> str:
    if len(problems) == 1:
        return str(problems[0])
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def raise_problems(problems: Sequence[Problem]) -> NoReturn:
    raise ConfigError(format_problems(problems))


def field_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every model class reachable through Optional/list/dict/Union/Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    if get_origin(annotation) is None and not found:
        return []
    return found


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """Key as written in YAML -> attribute name."""
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def walk_model(root: type[BaseModel], loc: Loc) -> tuple[Loc, list[type[BaseModel]]]:
    """Follow a pydantic error location through the model classes.

    Returns the location with union tags dropped (what a person sees in YAML)
    and the model classes that could sit at the end of it.
    """
    candidates: list[type[BaseModel]] = [root]
    shown: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            shown.append(part)
            continue
        tagged = [m for m in candidates if m.__name__ == part]
        if tagged:  # a union tag, not a key in the file
            candidates = tagged
            continue
        shown.append(part)
        owners = [m for m in candidates if part in _aliases(m)]
        if owners:
            info = owners[0].model_fields[_aliases(owners[0])[part]]
            candidates = _models_in(info.annotation)
        # otherwise a dict key (e.g. an endpoint name): the value type is already in candidates
    return tuple(shown), candidates


def _describe(error: Any) -> tuple[str, str, str]:
    """(message, expected, fix) for one pydantic error."""
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        hint = PATTERN_HINTS.get(pattern, f"text matching {pattern}")
        return f"{_short(given)} has the wrong form", hint, "change the value to the expected form"
    if kind == "value_error":
        return msg, "a valid value", "change the value as the message says"
    if kind in (
        "string_type",
        "int_type",
        "bool_type",
        "float_type",
        "date_type",
        "int_parsing",
        "bool_parsing",
        "float_parsing",
        "date_from_datetime_parsing",
        "date_parsing",
    ):
        expected = msg.removeprefix("Input should be ")
        fix = "change the value"
        if kind == "string_type" and isinstance(given, (int, float, bool)):
            fix = "quote the value: YAML reads unquoted 9:30, yes, no, on and 1e3 as numbers or booleans"
        return f"wrong type: got {_short(given)}", expected, fix
    if kind == "literal_error":
        expected = msg.removeprefix("Input should be ")
        return f"{_short(given)} is not allowed", expected, "use one of the allowed values"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        expected = "a list" if kind == "list_type" else "a mapping of keys to values"
        return (
            f"wrong type: got {_short(given)}",
            expected,
            "fix the indentation or the value's shape",
        )
    if kind == "union_tag_not_found" or kind == "union_tag_invalid":
        return (
            f"wrong type: got {_short(given)}",
            "a mapping",
            "write a mapping with the keys of this section",
        )
    expected = msg.removeprefix("Input should be ")
    return msg, expected, "change the value"


def problems_from_validation(
    error: ValidationError,
    model: type[BaseModel],
    file: str,
    line_of: Any,
) -> list[Problem]:
    """Turn a pydantic ValidationError into Problems; `line_of(loc) -> int | None`."""
    problems = []
    for item in error.errors(include_url=False):
        loc, parents = walk_model(model, tuple(item["loc"]))
        message, expected, fix = _describe(item)
        if item["type"] == "missing":
            key = loc[-1] if loc else "?"
            parent = field_path(loc[:-1]) or "the top level"
            message, expected, fix = (
                "missing required field",
                f"`{key}`",
                f"add `{key}:` under {parent}",
            )
        elif item["type"] == "extra_forbidden":
            _, parents = walk_model(model, tuple(item["loc"])[:-1])
            known = sorted({k for m in parents for k in _aliases(m)})
            key = str(loc[-1])
            close = difflib.get_close_matches(key, known, n=1)
            message = f"unknown key {key!r}"
            expected = "one of: " + ", ".join(known) if known else "no extra keys"
            fix = f"rename it to {close[0]!r}" if close else "remove it"
        elif loc == ("kind",):
            fix = "set the kind that matches the folder: feeds/ Feed, schemas/ Schema, environments/ Environment"
        problems.append(Problem(file, line_of(loc), field_path(loc), message, expected, fix))
    return problems


def unique_problems(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
