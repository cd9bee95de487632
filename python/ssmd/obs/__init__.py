"""Observability: Prometheus metrics (text exposition, no dependency) and JSON logs."""
