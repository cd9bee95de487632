"""Running ssmd in Kubernetes: manifests rendered from an environment (docs/deploy.md).

`render_environment` turns exchanges/environments/<env>.yaml (its `deploy:` section
and the rest of it) into a kustomize folder; `ssmd deploy render` writes it. The
container image is deploy/Dockerfile; `healthcheck` is its HEALTHCHECK.
"""
