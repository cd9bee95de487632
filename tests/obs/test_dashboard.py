"""deploy/grafana/ssmd.json: valid JSON, every panel queries something, every query is
valid PromQL over series the components export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from obsfix import SERIES, exported

from _support import ROOT, require_binary

DASHBOARD = ROOT / "deploy" / "grafana" / "ssmd.json"


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def test_dashboard_is_valid_json_with_unique_panels() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["title"] and panel["targets"], panel
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_every_panel_reads_exported_series(tmp_path: Path) -> None:
    for panel in _panels():
        used = {n for t in panel["targets"] for n in SERIES.findall(t["expr"])}
        assert used, f"panel {panel['title']!r} reads no ssmd series"
        assert used - exported(tmp_path) == set(), panel["title"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's $instance filled in)."""
    promtool = require_binary("promtool", "Debian: apt-get install prometheus")
    rules = [
        {"record": f"ssmd:dashboard_query_{i}", "expr": expr.replace("$instance", ".*")}
        for i, expr in enumerate(_exprs())
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
