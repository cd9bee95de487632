"""Exchanges, one folder each; the connector reaches them through `venue(name)`.

The shape every venue provides is in ssmd.venues.base (its docstring is the guide to
adding one); docs/venues/README.md says the same for readers of the docs.
"""

from __future__ import annotations

import importlib

from ssmd.exceptions import ConfigError
from ssmd.venues.base import Venue

__all__ = ["Venue", "venue"]


def venue(name: str) -> Venue:
    """The venue of the feed `name`: VENUE of the module ssmd.venues.<name>.venue."""
    if not name.isidentifier():
        raise ConfigError(f"no venue named {name!r}. Fix: name a folder of ssmd/venues/")
    try:
        module = importlib.import_module(f"ssmd.venues.{name}.venue")
    except ModuleNotFoundError as exc:
        if exc.name not in (f"ssmd.venues.{name}", f"ssmd.venues.{name}.venue"):
            raise
        raise ConfigError(
            f"feed {name!r} has no venue (no module ssmd.venues.{name}.venue). Fix: name the feed "
            "after a venue, or add one (docs/venues/README.md)"
        ) from None
    found = getattr(module, "VENUE", None)
    if not isinstance(found, Venue):
        raise ConfigError(
            f"ssmd.venues.{name}.venue does not export VENUE (a ssmd.venues.base.Venue)"
        )
    return found
