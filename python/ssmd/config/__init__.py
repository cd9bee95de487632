"""Configuration: the exchanges/ tree (feeds, schema registry, environments).

For components (connector, archiver, gateway, secmaster, `ssmd up`) there is
one entry point:

    env = load_environment("kalshi-sim")                       # ./exchanges or $SSMD_CONFIG_DIR
    env = load_environment("kalshi-dev", "path/to/exchanges", {"nats_url": "nats://10.0.0.5:4222"})

`load_environment(name, config_dir=None, overrides=None, *, feed=None, environ=None, today=None)`
returns a frozen `ResolvedEnvironment` for one feed the environment captures
(`feed`: spec.feed by default, or one of spec.venues by its feed's name; `env.feeds`
lists them all), or raises ssmd.exceptions.ConfigError naming file, line, field,
expectation and fix. It:
  - validates the environment's file and its feed's file (problems elsewhere in
    the tree do not block it; `ssmd validate` checks everything);
  - applies overrides, highest first: `overrides` (flags: data_dir, nats_url,
    ws_url, rest_url, s3_endpoint, redis_url, database_url, temporal_address),
    then environment variables (SSMD_DATA_DIR, SSMD_NATS_URL,
    SSMD_<FEED>_WS_URL, SSMD_<FEED>_REST_URL, SSMD_S3_ENDPOINT, SSMD_REDIS_URL,
    SSMD_DATABASE_URL, SSMD_TEMPORAL_ADDRESS; an empty variable counts as
    unset), then the YAML. `env.sources` says where each value came from;
  - picks the endpoint: the feed's endpoint set named by `spec.feed.endpoint`
    (prod, demo, ...), or the environment's own URLs with `endpoint: custom`;
  - resolves the data dir: SSMD_DATA_DIR (or the data_dir override), default
    ./data relative to the current directory, made absolute. Local storage
    paths that are relative live under it; an embedded NATS server keeps its
    files in `env.embedded_nats_dir` (<data dir>/nats);
  - transport: `env.nats.url` is a NATS URL or "embedded" (`ssmd up` starts its
    own nats-server; while it runs on the same data dir, "embedded" resolves to
    that server's URL, with `env.sources["nats_url"] == "ssmd up"`); stream
    defaults to SSMD_<ENV> (a venue of spec.venues: SSMD_<ENV>_<FEED>); subjects
    are "{env}.{feed}.>";
  - secrets: `env.secrets[name]` / `env.secret(name)` is a `Secret` holding the
    reference (env:VAR or file:/path). `.reveal()` reads the value when called;
    str()/repr() show `****`, never the value.

The commands' services (used by ssmd.cli) live in feeds, schemas, environments,
bootstrap (init), validate and gitops; models in ssmd.config.models.
"""

from ssmd.config.models import RECORD_TYPES, Environment, Feed, SchemaEntry, parse_duration
from ssmd.config.problems import Problem
from ssmd.config.resolve import (
    Endpoint,
    LocalStore,
    NatsSettings,
    Overrides,
    ResolvedEnvironment,
    S3Store,
    Store,
    load_environment,
    override_variables,
)
from ssmd.config.secrets import Secret
from ssmd.config.tree import ConfigTree, default_config_dir
from ssmd.config.validate import validate_tree

__all__ = [
    "RECORD_TYPES",
    "ConfigTree",
    "Endpoint",
    "Environment",
    "Feed",
    "LocalStore",
    "NatsSettings",
    "Overrides",
    "Problem",
    "ResolvedEnvironment",
    "S3Store",
    "SchemaEntry",
    "Secret",
    "Store",
    "default_config_dir",
    "load_environment",
    "override_variables",
    "parse_duration",
    "validate_tree",
]
