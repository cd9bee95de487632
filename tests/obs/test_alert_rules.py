"""deploy/prometheus/rules.yaml: valid, every rule unit-tested with promtool, and every
series a rule reads exported by a component."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from obsfix import SERIES, exported

from _support import ROOT, require_binary

RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yaml"))


def _rules() -> list[dict[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _promtool(*args: str) -> None:
    promtool = require_binary("promtool", "Debian: apt-get install prometheus")
    done = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_file_is_valid() -> None:
    _promtool("check", "rules", str(RULES))


def test_rule_unit_tests_pass() -> None:
    assert TESTS
    _promtool("test", "rules", *map(str, TESTS))


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for path in TESTS
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")  # a test that sees it fire, not only stay quiet
    }
    alerts = {rule["alert"] for rule in _rules()}
    assert alerts - tested == set()
    assert tested - alerts == set()


def test_every_series_a_rule_reads_is_exported(tmp_path: Path) -> None:
    used = {name for rule in _rules() for name in SERIES.findall(rule["expr"])}
    assert used
    assert used - exported(tmp_path) == set()
