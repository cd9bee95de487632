"""What `ssmd deploy render` does, apart from printing: plan, render, write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssmd.config.environments import list_environments
from ssmd.config.tree import ConfigTree
from ssmd.deploy.plan import make_plan
from ssmd.deploy.render import (
    Rendered,
    render_argocd,
    render_environment,
    write_environment,
    write_files,
)

ARGOCD_DIR = "argocd"


@dataclass(frozen=True)
class Written:
    rendered: Rendered
    paths: list[Path]


def render_to(
    out: Path, env: str, config_dir: Path | None = None, *, argocd: bool = False
) -> Written:
    """Render `env` into OUT/<env> (and OUT/argocd with `argocd`); ConfigError before any write."""
    plan = make_plan(env, config_dir)
    rendered = render_environment(plan, out / plan.env)
    argocd_files: dict[str, str] = {}
    if argocd:
        # The ApplicationSet lists every environment that names the repository to follow.
        environments, _ = list_environments(ConfigTree.at(config_dir))
        names = sorted(
            e.document.name
            for e in environments
            if e.document.spec.deploy is not None and e.document.spec.deploy.argocd.repo_url
        )
        others = [n for n in names if n != plan.env]
        plans = sorted([plan, *(make_plan(n, config_dir) for n in others)], key=lambda p: p.env)
        argocd_files = render_argocd(plan, plans)
    paths = write_environment(out, rendered)
    if argocd_files:
        paths += write_files(out / ARGOCD_DIR, argocd_files)
    return Written(rendered, paths)
