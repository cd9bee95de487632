"""The committed exchanges/ tree: valid, identical to `ssmd init`, matching its JSON Schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import yaml
from config_helpers import SHIPPED, snapshot

from ssmd import core
from ssmd.config import RECORD_TYPES, load_environment, validate_tree
from ssmd.config.jsonschema import schema_texts, stale_files
from ssmd.config.models import KINDS
from ssmd.config.tree import ConfigTree


def test_shipped_tree_validates() -> None:
    assert validate_tree(SHIPPED) == []


def test_a_copy_of_the_shipped_tree_validates_anywhere(tmp_path: Path) -> None:
    # The schema comes from the package, not from a schemas/ folder beside the tree.
    copy = tmp_path / "ops" / "exchanges"
    shutil.copytree(SHIPPED, copy)
    assert validate_tree(copy) == []


def test_init_writes_exactly_the_shipped_tree(tree: ConfigTree) -> None:
    assert snapshot(tree.root) == snapshot(SHIPPED)


def test_committed_json_schemas_match_the_models() -> None:
    assert stale_files(SHIPPED / "schema") == []


def test_every_shipped_file_satisfies_its_json_schema() -> None:
    for _, folder, schema_name in KINDS.values():
        schema = json.loads(schema_texts()[schema_name])
        for path in sorted((SHIPPED / folder).glob("*.yaml")):
            jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_registry_has_one_entry_per_record_type() -> None:
    assert sorted(p.stem for p in (SHIPPED / "schemas").glob("*.yaml")) == sorted(RECORD_TYPES)


def test_config_names_the_record_types_as_the_core_does() -> None:
    assert RECORD_TYPES == core.RECORD_TYPES


def test_json_schema_rejects_an_unknown_key() -> None:
    schema = json.loads(schema_texts()["environment.json"])
    document = yaml.safe_load((SHIPPED / "environments" / "kalshi-sim.yaml").read_text())
    document["spec"]["transport"]["retension"] = "48h"
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as error:
        assert "retension" in error.message
    else:
        raise AssertionError("the JSON Schema accepted an unknown key")


def test_shipped_environments_resolve(tmp_path: Path) -> None:
    sim = load_environment("kalshi-sim", SHIPPED, environ={"SSMD_DATA_DIR": str(tmp_path)})
    assert sim.nats.embedded
    assert sim.endpoint.ws_url.startswith("ws://127.0.0.1:")
    dev = load_environment("kalshi-dev", SHIPPED, environ={})
    assert dev.endpoint.ws_url == "wss://demo-api.kalshi.co/trade-api/ws/v2"
    assert dev.endpoint.rest_url == "https://demo-api.kalshi.co/trade-api/v2"
    prod = dev.feed.spec.endpoints["prod"]
    assert prod.ws_url == "wss://api.elections.kalshi.com/trade-api/ws/v2"
    assert prod.rest_url == "https://api.elections.kalshi.com/trade-api/v2"
