"""Fixtures of the deploy tests: a config tree to render, and the schemas to check against.

tests/deploy/tree is a small exchanges/ tree: kalshi-prod (every deploy field set),
kalshi-sim (the defaults, with the simulator in the cluster) and multi-sim (Kalshi with
Polymarket and Kraken under spec.venues, each from its simulator). A test copies it into
tmp_path, changes what it needs, and renders from the copy.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
import yaml

HERE = Path(__file__).parent
TREE = HERE / "tree"
CRDS = HERE / "crds"
K8S_VERSION = "1.31"


def unavailable(message: str) -> NoReturn:
    """Fail under SSMD_REQUIRE_SERVICES=1 (CI), else skip loudly."""
    if os.environ.get("SSMD_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def project(tmp_path: Path) -> Path:
    """A project root in tmp_path holding a copy of the tree as exchanges/; returns exchanges/."""
    config = tmp_path / "project" / "exchanges"
    shutil.copytree(TREE, config)
    return config


def edit_environment(config: Path, name: str, change: dict[str, Any]) -> None:
    """Merge `change` into spec of environments/NAME.yaml (None removes a key)."""
    path = config / "environments" / f"{name}.yaml"
    document = yaml.safe_load(path.read_text())

    def merge(into: dict[str, Any], what: dict[str, Any]) -> None:
        for key, value in what.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(document["spec"], change)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def load_objects(folder: Path) -> list[dict[str, Any]]:
    """Every object of the resources a kustomization lists (before kustomize runs)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects = []
    for name in kustomization["resources"]:
        objects += [o for o in yaml.safe_load_all((folder / name).read_text()) if o]
    return objects


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl not found on PATH (Debian: apt-get install kubernetes-client)")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [o for o in yaml.safe_load_all(result.stdout) if o]


def _strict(schema: Any) -> Any:
    """Close every object schema that does not keep unknown fields (strict validation)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if isinstance(schema, str) and schema.startswith("^(?i)"):
        return "(?i)^" + schema[5:]  # Go accepts the flag after ^, Python only first
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the vendored openAPIV3Schema, made strict."""
    schemas = {}
    for path in sorted(CRDS.glob("*.json*")):
        raw = path.read_bytes()
        document = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
        key = (document["apiVersion"], document["kind"])
        schemas[key] = _strict(document["openAPIV3Schema"])
    return schemas


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if `obj` does not fit its Kubernetes (or vendored CRD) schema."""
    import kubernetes_validate

    key = (obj["apiVersion"], obj["kind"])
    crd = crd_schemas().get(key)
    if crd is not None:
        jsonschema.validate(obj, crd, cls=jsonschema.Draft4Validator)
        return
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
