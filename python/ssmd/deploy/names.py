"""Kubernetes' limits on the names render writes.

An environment's name goes into every object's name (`ssmd-{env}-connector-polymarket-1`)
and namespace. A name over its kind's limit is refused by the API server at apply time,
or worse, accepted and refused later by a controller: a StatefulSet's pods carry the label
`controller-revision-hash=<name>-<10 characters>` and a CronJob's Jobs are named
`<name>-<11 digits>`, both held to a label's 63 characters. Render checks them first, so
the fix is named while the environment file is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ssmd.config.problems import Problem, display_path, raise_problems
from ssmd.deploy.plan import Plan
from ssmd.deploy.pods import Object

LABEL: Final = 63  # a DNS label, and a label's value
SUBDOMAIN: Final = 253
# Kinds whose names Kubernetes (or the objects it makes from them) holds tighter.
LIMITS: Final = {
    "Namespace": LABEL,
    "Service": LABEL,
    "Job": LABEL,
    "StatefulSet": LABEL - 11,  # "-" and the 10-character revision hash
    "CronJob": 52,  # the API server's own limit: "-" and 11 digits of the scheduled time
}


def too_long(objects: Iterable[Object]) -> list[tuple[str, str, int]]:
    """(kind, name, limit) of every object whose name, or a label's value, is too long."""
    out = []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        limit = LIMITS.get(kind, SUBDOMAIN)
        if len(meta["name"]) > limit:
            out.append((kind, meta["name"], limit))
        out += [
            (f"{kind} label {key}", value, LABEL)
            for key, value in meta.get("labels", {}).items()
            if len(value) > LABEL
        ]
    return out


def check_names(plan: Plan, objects: Iterable[Object]) -> None:
    """ConfigError naming the environment file and the shorter name to choose, if any
    object of the render would be refused for its name's length."""
    found = too_long(objects)
    if not found:
        return
    longest = max(len(name) - limit for _, name, limit in found)
    listed = "; ".join(f"{kind} {name} ({len(name)} > {limit})" for kind, name, limit in found)
    raise_problems(
        [
            Problem(
                display_path(plan.env_file),
                None,
                "metadata.name",
                f"names the Kubernetes objects, and these would be too long: {listed}",
                f"an environment name of at most {len(plan.env) - longest} characters",
                "rename the environment (metadata.name and the file name) to a shorter one",
            )
        ]
    )
