"""The operations layer: daily startup and teardown as Temporal workflows (docs/operations.md).

Modules: temporal (address, client, the dev server), workflows (the order of things),
activities (each step, idempotent), runtime (the interface over where components
run), local (processes on this machine, with `ssmd up`'s pieces), kube (Kubernetes
Deployments), verify (the archive after a day), days (trading day records),
schedules (the environment's schedule as Temporal Schedules), control (what
`ssmd ops` asks Temporal), worker (`ssmd worker run`).
This package imports nothing at import time.
"""
