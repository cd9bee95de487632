"""`ssmd init`: a new config tree with the Kalshi feed, its environments and the schema registry.

The feed and environment files are copied from the templates shipped in
ssmd/config/templates/ (URLs live only in YAML). The schema registry is made
here: one entry per normalized record type, hashed from the schema shipped
with ssmd (ssmd.schemas), so it needs no repository checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ssmd.config.edit import build, render
from ssmd.config.hashing import DEFAULT_SCHEMA_FILE, hash_file, schema_file
from ssmd.config.jsonschema import schema_texts
from ssmd.config.models import API_VERSION, KINDS, RECORD_TYPES, Document, SchemaEntry
from ssmd.config.problems import display_path, raise_problems
from ssmd.config.tree import ConfigTree, parse_document
from ssmd.config.yamlio import write_atomically
from ssmd.exceptions import ConfigError

TEMPLATES: Final = Path(__file__).with_name("templates")

RECORD_DESCRIPTIONS: Final = {
    "trade": "A public trade: price, size, taker side (Kraken trade: exact priceUnits and sizeUnits at the pair's precision, spot set).",
    "orderbook": "An order-book snapshot or delta for one market (Kraken book: spotBook, exact levels at the pair's precision and the CRC32 verdict).",
    "ticker": "Top of book, last price, volume and open interest (Kraken ticker: spotTicker).",
    "lifecycle": "A market lifecycle event (created, opened, closed, determined, settled).",
    "status": "A market's trading status (Kraken: instrument pairs as instrument, the engine status as venueStatus).",
    "event": "A connector event: connected, disconnected, gap, resync.",
}


@dataclass(frozen=True)
class InitResult:
    written: list[Path]


def _template_documents(tree: ConfigTree) -> dict[Path, str]:
    files = {}
    for kind, (model, folder, _) in KINDS.items():
        source = TEMPLATES / folder
        if not source.is_dir():
            continue
        for template in sorted(source.glob("*.yaml")):
            loaded, problems = parse_document(template.read_text(encoding="utf-8"), template, model)
            if loaded is None:
                raise_problems(problems)  # a broken template is a packaging bug; say so loudly
            files[tree.path(kind, template.stem)] = render(loaded.document)
    return files


def _registry(tree: ConfigTree, schema_hash: str) -> dict[Path, str]:
    files = {}
    for record_type in RECORD_TYPES:
        data = {
            "apiVersion": API_VERSION,
            "kind": "Schema",
            "metadata": {"name": record_type},
            "spec": {
                "file": DEFAULT_SCHEMA_FILE,
                "description": RECORD_DESCRIPTIONS[record_type],
                "versions": [{"version": "v1", "status": "active", "hash": schema_hash}],
            },
        }
        path = tree.path("Schema", record_type)
        entry: Document = build(SchemaEntry, data, path)
        files[path] = render(entry)
    return files


def bootstrap_files(tree: ConfigTree) -> dict[Path, str]:
    """Every file `ssmd init` writes."""
    files = _template_documents(tree)
    files |= _registry(tree, hash_file(schema_file(tree.project_root, DEFAULT_SCHEMA_FILE)))
    files |= {tree.jsonschema_dir / name: text for name, text in schema_texts().items()}
    return files


def init_tree(tree: ConfigTree) -> InitResult:
    """Create the tree; refuses (writing nothing) if any file it would write exists."""
    files = bootstrap_files(tree)
    existing = sorted(display_path(p) for p in files if p.exists())
    if existing:
        raise ConfigError(
            f"{display_path(tree.root)}: refusing to overwrite {', '.join(existing)}; expected "
            "a new or empty directory. Fix: choose another directory or remove those files"
        )
    for kind in KINDS:
        tree.folder(kind).mkdir(parents=True, exist_ok=True)
    write_atomically(files)
    return InitResult(sorted(files))
