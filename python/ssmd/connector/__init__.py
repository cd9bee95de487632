"""The Kalshi connector: `ssmd connector run` (see docs/connector.md).

selection.py   which markets to capture, following the lifecycle live
shards.py      markets -> WebSocket shards of at most N markets
spool.py       the capture queue: bounded memory, then a local spool file
pipeline.py    batch normalization, seq/gap tracking, messages to publish
runner.py      wires shards, pipeline, publisher, health (ssmd.obs.health) and signals together
"""
