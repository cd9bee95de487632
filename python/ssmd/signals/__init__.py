"""Signals: a small module of callbacks run over the same records live or on a replay
(docs/signals.md)."""
