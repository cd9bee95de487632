"""ArgoCD: an Application for one environment's folder, and an ApplicationSet over every
environment whose `deploy.argocd.repo_url` is set (each element names its folder and namespace).

Both follow the rendered folders in git (`deploy.argocd.repo_url`, `revision`, `path`):
render, commit, push; ArgoCD applies the change.
"""

from __future__ import annotations

from ssmd.config.problems import Problem, display_path, raise_problems
from ssmd.deploy.plan import Plan
from ssmd.deploy.pods import Object

IN_CLUSTER = "https://kubernetes.default.svc"
SYNC_POLICY: Object = {
    "automated": {"prune": True, "selfHeal": True},
    "syncOptions": ["CreateNamespace=true"],
}


def _repo(plan: Plan) -> str:
    repo = plan.deploy.argocd.repo_url
    if repo is None:
        raise_problems(
            [
                Problem(
                    display_path(plan.env_file),
                    None,
                    "spec.deploy.argocd.repo_url",
                    "not set; ArgoCD follows the rendered manifests in a git repository",
                    "the URL of the repository holding them",
                    "set spec.deploy.argocd.repo_url (e.g. https://github.com/ORG/REPO.git)",
                )
            ]
        )
    return repo


def _folder(plan: Plan) -> str:
    return f"{plan.deploy.argocd.path.rstrip('/')}/{plan.env}"


def application(plan: Plan) -> Object:
    argo = plan.deploy.argocd
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": f"ssmd-{plan.env}", "namespace": argo.namespace},
        "spec": {
            "project": argo.project,
            "source": {
                "repoURL": _repo(plan),
                "targetRevision": argo.revision,
                "path": _folder(plan),
            },
            "destination": {"server": IN_CLUSTER, "namespace": plan.namespace},
            "syncPolicy": SYNC_POLICY,
        },
    }


def application_set(plans: list[Plan]) -> Object:
    elements = [
        {
            "env": plan.env,
            "namespace": plan.namespace,
            "repoURL": _repo(plan),
            "revision": plan.deploy.argocd.revision,
            "path": _folder(plan),
            "project": plan.deploy.argocd.project,
        }
        for plan in plans
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "ssmd", "namespace": plans[0].deploy.argocd.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"list": {"elements": elements}}],
            "template": {
                "metadata": {"name": "ssmd-{{.env}}"},
                "spec": {
                    "project": "{{.project}}",
                    "source": {
                        "repoURL": "{{.repoURL}}",
                        "targetRevision": "{{.revision}}",
                        "path": "{{.path}}",
                    },
                    "destination": {"server": IN_CLUSTER, "namespace": "{{.namespace}}"},
                    "syncPolicy": SYNC_POLICY,
                },
            },
        },
    }
