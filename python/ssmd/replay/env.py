"""The replay environment `{env}-replay-{id}`: its own stream and subjects, never the
live environment's.

Names are built by the same functions as the live ones (ssmd.config's stream name,
ssmd.bus.subjects' prefix), so the archiver and the gateway run on a replay unchanged.
A replay whose name or stream is that of an environment in the configuration is
refused: it would publish into live data.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ssmd.bus import subjects
from ssmd.config import ConfigTree, NatsSettings, ResolvedEnvironment
from ssmd.config.environments import list_environments
from ssmd.config.models.common import env_var_token
from ssmd.exceptions import ConfigError

__all__ = ["check_no_collision", "replay_environment", "replay_name"]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def replay_name(env: str, replay_id: str) -> str:
    """`{env}-replay-{id}`; ConfigError for an id that cannot name a subject token."""
    if not _ID.match(replay_id):
        raise ConfigError(
            f"replay id {replay_id!r} must be 1 to 32 lower-case letters, digits or '-', "
            "starting with a letter or digit. Fix: pass e.g. --id 1"
        )
    return f"{env}-replay-{replay_id}"


def _stream_name(env_name: str) -> str:
    return f"SSMD_{env_var_token(env_name)}"


def replay_environment(live: ResolvedEnvironment, replay_id: str) -> ResolvedEnvironment:
    """The live environment with the replay's name, stream and subjects; everything else
    (NATS server, stores, data dir) is the live one's, and keys and subjects start with
    the replay's name, so nothing of it lands among live data."""
    name = replay_name(live.name, replay_id)
    nats: NatsSettings = replace(
        live.nats,
        stream=_stream_name(name),
        subject_prefix=subjects.prefix(name, live.feed.metadata.name),
    )
    return replace(live, name=name, nats=nats)


def check_no_collision(replay: ResolvedEnvironment, config_dir: str | Path | None) -> None:
    """ConfigError when an environment of the configuration has the replay's name or
    stream."""
    tree = ConfigTree.at(config_dir).require()
    loaded, _ = list_environments(tree)
    for item in loaded:
        doc = item.document
        name = doc.metadata.name
        stream = doc.spec.transport.stream or _stream_name(name)
        if name == replay.name or stream == replay.nats.stream:
            raise ConfigError(
                f"the replay environment {replay.name} (stream {replay.nats.stream}) collides "
                f"with the configured environment {name} (stream {stream}, {item.file}): a "
                "replay never publishes into a live environment. Fix: pass another --id"
            )
