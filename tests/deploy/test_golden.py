"""Golden files: the manifests of tests/deploy/tree, and what a change to an environment
changes in them (a unified diff a reviewer reads like a pull request's).

After an intended change to the renderer: SSMD_UPDATE_GOLDEN=1 pytest tests/deploy/test_golden.py
rewrites tests/deploy/golden/; review and commit the difference.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest
from deployfix import HERE, edit_environment, project

from ssmd.deploy.plan import make_plan
from ssmd.deploy.render import CONFIG_COPY_DIR, render_environment

GOLDEN = HERE / "golden"
UPDATE = os.environ.get("SSMD_UPDATE_GOLDEN") == "1"

# name -> (environment, change to its spec)
CHANGES: dict[str, tuple[str, dict[str, Any]]] = {
    "kalshi-prod.shard-groups-3": ("kalshi-prod", {"deploy": {"connector": {"shard_groups": 3}}}),
    "kalshi-prod.five-nats-servers": (
        "kalshi-prod",
        {"transport": {"replicas": 5}, "deploy": {"nats": {"replicas": 5}}},
    ),
}


def manifests(config: Path, env: str) -> dict[str, str]:
    """The generated files (the copies of the two config files are left out: verbatim)."""
    files = render_environment(make_plan(env, config)).files
    return {n: t for n, t in sorted(files.items()) if not n.startswith(f"{CONFIG_COPY_DIR}/")}


def check(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path} is missing; run with SSMD_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text()
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), text.splitlines(True), str(path), "rendered"
            )
        )
        pytest.fail(f"{path.name} differs from its golden file:\n{diff}")


@pytest.mark.parametrize("env", ["kalshi-prod", "kalshi-sim", "multi-sim"])
def test_manifests_match_the_golden_files(tmp_path: Path, env: str) -> None:
    files = manifests(project(tmp_path), env)
    for name, text in files.items():
        check(GOLDEN / env / name, text)
    if not UPDATE:
        assert sorted(p.name for p in (GOLDEN / env).iterdir()) == sorted(files)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_what_a_change_to_the_environment_changes(tmp_path: Path, name: str) -> None:
    env, change = CHANGES[name]
    config = project(tmp_path)
    before = manifests(config, env)
    edit_environment(config, env, change)
    after = manifests(config, env)
    diff = []
    for file in sorted(set(before) | set(after)):
        diff += difflib.unified_diff(
            before.get(file, "").splitlines(True),
            after.get(file, "").splitlines(True),
            f"a/{file}",
            f"b/{file}",
        )
    assert diff, "the change changed nothing"
    check(GOLDEN / f"{name}.diff", "".join(diff))
