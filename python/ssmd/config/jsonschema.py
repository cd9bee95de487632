"""JSON Schemas of the config kinds, generated from the models, for editors.

    python -m ssmd.config.jsonschema [OUT_DIR] [--check]

writes feed.json, schema-entry.json and environment.json into OUT_DIR
(default: <config dir>/schema). With --check it writes nothing and exits 1 if
the files differ from what the models produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ssmd.config.models import KINDS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_texts() -> dict[str, str]:
    """File name -> JSON text, for every kind."""
    texts = {}
    for kind, (model, folder, file_name) in KINDS.items():
        schema = {
            "$schema": JSON_SCHEMA_DIALECT,
            "title": f"ssmd {kind}",
            "description": f"A file under exchanges/{folder}/ (generated from ssmd.config.models; do not edit).",
            **model.model_json_schema(by_alias=True),
        }
        texts[file_name] = json.dumps(schema, indent=2, sort_keys=False) + "\n"
    return texts


def stale_files(out_dir: Path) -> list[str]:
    """Names of the files in out_dir that differ from the generated ones."""
    return [
        name
        for name, text in schema_texts().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]


def write_schemas(out_dir: Path) -> list[Path]:
    from ssmd.config.yamlio import write_atomically

    files = {out_dir / name: text for name, text in schema_texts().items()}
    write_atomically(files)
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    from ssmd.config.tree import ConfigTree

    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    out_dir = Path(paths[0]) if paths else ConfigTree.at().jsonschema_dir
    if check:
        stale = stale_files(out_dir)
        for name in stale:
            print(f"{out_dir / name} is out of date: run `just gen-config-schema`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
