"""`ssmd deploy render`: Kubernetes manifests (kustomize) and ArgoCD objects from an environment."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ssmd.cli.options import ConfigDirOption, EnvOption, JsonOption
from ssmd.cli.output import print_json, print_table, print_text, reporting

app = typer.Typer(help="Kubernetes: render an environment's manifests (docs/deploy.md).")


@app.command()
def render(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    out: Path = typer.Option(
        Path("deploy/k8s"), "--out", metavar="DIR", help="Folder of the rendered environments."
    ),
    argocd: bool = typer.Option(
        False,
        "--argocd",
        help="Also write DIR/argocd: this environment's Application and an ApplicationSet "
        "over every environment whose deploy.argocd.repo_url is set.",
    ),
    as_json: JsonOption = False,
) -> None:
    """Write DIR/ENV: a kustomize folder (NATS cluster, connector, archiver, gateway, ...).

    Example: ssmd deploy render --env kalshi-prod --out deploy/k8s --argocd
    """
    from ssmd.deploy.service import render_to

    with reporting(as_json):
        written = render_to(out, env, config_dir, argocd=argocd)
    rendered = written.rendered
    files = [os.path.relpath(p) for p in written.paths]
    if as_json:
        print_json(
            {
                "ok": True,
                "env": rendered.env,
                "files": files,
                "secrets": [{"name": n, "secret": s, "as": how} for n, s, how in rendered.secrets],
                "notes": rendered.notes,
            }
        )
        return
    print_text(f"rendered {rendered.env} into {len(files)} files under {out}/")
    if rendered.secrets:
        print_table(
            "Secrets to create in the namespace (key `value`)",
            ["spec.secrets", "Kubernetes Secret", "as"],
            rendered.secrets,
        )
    for note in rendered.notes:
        print_text(f"note: {note}")
    print_text(f"check: kubectl kustomize {out / rendered.env}")
