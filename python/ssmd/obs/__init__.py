"""Observability: Prometheus metrics (prometheus_client, one registry per component), JSON
logs naming their component, and the /health + /metrics HTTP server the components share
(health.HealthServer)."""
