"""`ssmd deploy render` refuses what would not work in a cluster: one error per problem,
naming the file, line and field with its fix, and nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deployfix import edit_environment, project
from typer.testing import CliRunner, Result

from ssmd.cli import app


def render(config: Path, out: Path, *extra: str, env: str = "kalshi-prod") -> Result:
    return CliRunner().invoke(
        app,
        ["deploy", "render", "--config-dir", str(config), "--env", env, "--out", str(out), *extra],
        env={"SSMD_ENV": ""},
    )


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "secret missing from spec.secrets",
        {"deploy": {"secrets": {"kalshi_rsa_key": "sealed:kalshi-rsa"}}},
        "spec.deploy.secrets.kalshi_rsa_key: names a secret that spec.secrets does not declare",
        "add `kalshi_rsa_key: env:VAR` (or file:/path) to spec.secrets",
    ),
    (
        "gateway without API keys",
        {"secrets": {"gateway_api_keys": None}},
        "spec.secrets.gateway_api_keys: missing",
        "add gateway_api_keys to spec.secrets",
    ),
    (
        "two NATS servers",
        {"transport": {"replicas": 1}, "deploy": {"nats": {"replicas": 2}}},
        "spec.deploy.nats.replicas: 2 JetStream servers cannot keep a quorum",
        "set spec.deploy.nats.replicas to 3",
    ),
    (
        "more stream replicas than servers",
        {"transport": {"replicas": 5}},
        "spec.transport.replicas: the stream wants 5 replicas but the cluster has 3 NATS server(s)",
        "lower spec.transport.replicas to 3 or raise spec.deploy.nats.replicas",
    ),
    (
        "no storage class",
        {"deploy": {"storage_class": None}},
        "spec.deploy.storage_class: not set",
        "set spec.deploy.storage_class to one that `kubectl get storageclass` lists",
    ),
    (
        "SQLite security master",
        {"database": None},
        "spec.database: not set; in a cluster the security master's store is shared",
        "add a database section naming a PostgreSQL server",
    ),
    (
        "no deploy section",
        {"deploy": None},
        "spec.deploy: not set",
        "add `deploy: {storage_class: NAME}` under spec",
    ),
]


@pytest.mark.parametrize(
    ("change", "problem", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_with_the_field_and_the_fix(
    tmp_path: Path, change: dict[str, Any], problem: str, fix: str
) -> None:
    config = project(tmp_path)
    edit_environment(config, "kalshi-prod", change)
    result = render(config, tmp_path / "out")
    assert result.exit_code == 1
    assert "environments/kalshi-prod.yaml:" in result.output
    assert problem in result.output and f"Fix: {fix}" in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    config = project(tmp_path)
    edit_environment(
        config, "kalshi-prod", {"transport": {"replicas": 5}, "deploy": {"storage_class": None}}
    )
    result = render(config, tmp_path / "out")
    assert result.exit_code == 1
    assert "2 problems" in result.output
    lines = (config / "environments" / "kalshi-prod.yaml").read_text().splitlines()
    replicas_line = next(i for i, line in enumerate(lines, 1) if line.strip() == "replicas: 5")
    assert f"kalshi-prod.yaml:{replicas_line}: spec.transport.replicas" in result.output


def test_argocd_needs_the_repository(tmp_path: Path) -> None:
    result = render(project(tmp_path), tmp_path / "out", "--argocd", env="kalshi-sim")
    assert result.exit_code == 1
    assert "spec.deploy.argocd.repo_url: not set" in result.output
    assert not (tmp_path / "out").exists()


def test_a_broken_rules_file_is_named(tmp_path: Path) -> None:
    config = project(tmp_path)
    rules = config.parent / "deploy" / "prometheus" / "rules.yaml"
    rules.parent.mkdir(parents=True)
    rules.write_text(yaml.safe_dump({"rules": [{"alert": "x", "expr": "up == 0"}]}))
    result = render(config, tmp_path / "out")
    assert result.exit_code == 1
    assert "deploy/prometheus/rules.yaml: groups: missing or not a list" in result.output


def test_a_misspelt_deploy_field_is_a_config_problem(tmp_path: Path) -> None:
    config = project(tmp_path)
    edit_environment(config, "kalshi-prod", {"deploy": {"storage_clas": "fast"}})
    result = render(config, tmp_path / "out")
    assert result.exit_code == 1
    assert "spec.deploy.storage_clas: unknown key" in result.output
    assert "storage_class" in result.output


def _renamed(config: Path, name: str) -> None:
    """environments/NAME.yaml: multi-sim under another name."""
    document = yaml.safe_load((config / "environments" / "multi-sim.yaml").read_text())
    document["metadata"]["name"] = name
    (config / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))


# Kubernetes' own limits, written out here apart from the code's: a StatefulSet's pods
# get the label controller-revision-hash=<name>-<10 characters> (63 at most), a CronJob's
# name is held to 52 by the API server, Services and Namespaces are DNS labels.
K8S_LIMITS = {"StatefulSet": 52, "CronJob": 52, "Service": 63, "Namespace": 63}


def test_an_environment_name_too_long_for_kubernetes_names_the_longest_that_fits(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    long_name = "a-market-data-environment-with-a-long-name"
    _renamed(config, long_name)
    result = render(config, tmp_path / "out", env=long_name)
    assert result.exit_code == 1
    assert f"environments/{long_name}.yaml: metadata.name:" in result.output
    assert f"StatefulSet ssmd-{long_name}-archiver-polymarket" in result.output
    assert not (tmp_path / "out").exists()
    fits = int(result.output.split("an environment name of at most ")[1].split()[0])
    assert 0 < fits < len(long_name)
    # The longest name the error allows renders, and every name is within the limits.
    _renamed(config, long_name[:fits])
    result = render(config, tmp_path / "out", env=long_name[:fits])
    assert result.exit_code == 0, result.output
    objects = [
        o
        for path in (tmp_path / "out" / long_name[:fits]).glob("*.yaml")
        for o in yaml.safe_load_all(path.read_text())
        if o and "metadata" in o and "kind" in o
    ]
    longest = {
        kind: max(len(o["metadata"]["name"]) for o in objects if o["kind"] == kind)
        for kind in K8S_LIMITS
    }
    assert all(longest[kind] <= limit for kind, limit in K8S_LIMITS.items()), longest
    assert any(longest[kind] == limit for kind, limit in K8S_LIMITS.items()), longest  # no slack
