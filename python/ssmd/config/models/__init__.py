"""Pydantic models of the config documents: Feed, SchemaEntry, Environment."""

from ssmd.config.models.common import API_VERSION, RECORD_TYPES, Document, parse_duration
from ssmd.config.models.environment import Environment
from ssmd.config.models.feed import Feed
from ssmd.config.models.schema_entry import SchemaEntry

# kind -> (model, folder under the config dir, JSON Schema file name)
KINDS: dict[str, tuple[type[Document], str, str]] = {
    "Feed": (Feed, "feeds", "feed.json"),
    "Schema": (SchemaEntry, "schemas", "schema-entry.json"),
    "Environment": (Environment, "environments", "environment.json"),
}

__all__ = [
    "API_VERSION",
    "KINDS",
    "RECORD_TYPES",
    "Document",
    "Environment",
    "Feed",
    "SchemaEntry",
    "parse_duration",
]
