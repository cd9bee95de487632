"""Observability: Prometheus metrics (text exposition, no dependency), JSON logs, and the
/health + /metrics HTTP server the components share (health.HealthServer)."""
