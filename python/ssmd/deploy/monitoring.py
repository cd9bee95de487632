"""Prometheus Operator objects: a ServiceMonitor over every ssmd /metrics endpoint, and a
PrometheusRule carrying the project's alert rules (deploy/prometheus/rules.yaml).

The rules file is a plain Prometheus rules file (`groups:`), so that it also works
without the operator; it is optional here: without it no PrometheusRule is rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml

from ssmd.config.problems import Problem, display_path, raise_problems
from ssmd.deploy.components import SCRAPE_LABEL
from ssmd.deploy.plan import Plan
from ssmd.deploy.pods import Object, metadata

RULES_FILE: Final = Path("deploy/prometheus/rules.yaml")  # under the project root


def service_monitor(plan: Plan) -> Object:
    endpoints = [
        # The connector's and archiver's health servers, and the gateway's own port.
        {"port": "metrics", "path": "/metrics", "interval": "30s"},
        {"port": "http", "path": "/metrics", "interval": "30s"},
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(plan, "ssmd", "monitoring"),
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/instance": plan.env, SCRAPE_LABEL: "true"}
            },
            "endpoints": endpoints,
        },
    }


def rules_file(plan: Plan) -> Path:
    return plan.project_root / RULES_FILE


def prometheus_rule(plan: Plan) -> Object | None:
    """The PrometheusRule of the rules file, or None when the project has none."""
    path = rules_file(plan)
    if not path.is_file():
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise_problems(
            [
                Problem(
                    display_path(path),
                    mark.line + 1 if mark is not None else None,
                    "",
                    f"not YAML ({getattr(error, 'problem', error)})",
                    "a Prometheus rules file",
                    "correct the file (`promtool check rules` checks it)",
                )
            ]
        )
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise_problems(
            [
                Problem(
                    display_path(path),
                    None,
                    "groups",
                    "missing or not a list",
                    "a Prometheus rules file: `groups: [{name, rules: [...]}]`",
                    "put the rules under a top-level groups list",
                )
            ]
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(plan, "ssmd", "monitoring"),
        "spec": {"groups": groups},
    }
