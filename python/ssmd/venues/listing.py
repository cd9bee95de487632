"""A selection from a venue's public REST listing (Polymarket, Kraken): refreshed every
sync interval by the runner, filtered to the shard group's symbols; a listing that
cannot be read, whatever the failure, keeps the last selection and is counted (as
Kalshi's ssmd.connector.selection.Selection does), so the tracking loop reads it again
after a backoff. A venue says how it lists and selects (`_select`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment
    from ssmd.config.models.environment import Symbols
    from ssmd.connector.groups import ShardGroup

__all__ = ["ListingSelection", "no_credentials"]

log = logging.getLogger(__name__)


class ListingSelection:
    def __init__(self, symbols: Symbols, rest_url: str, group: ShardGroup | None) -> None:
        self.symbols = symbols
        self.rest_url = rest_url
        self.group = group
        self.refresh_errors = 0
        self.last_error = ""
        self._desired: set[str] = set()

    @classmethod
    def create(
        cls,
        symbols: Symbols,
        rest_url: str,
        credentials: Any,
        clock: Callable[[], float],
        stored: Callable[[], Iterable[dict[str, Any]]] | None,
        group: ShardGroup | None,
    ) -> Self:
        """The venue's `selection` (public listings need no credentials, clock or store)."""
        return cls(symbols, rest_url, group)

    async def _select(self) -> set[str]:
        """Reads the listing; the symbols `self.symbols` names (raises if unreadable)."""
        raise NotImplementedError

    async def refresh(self) -> None:
        """Read the listing again; on failure keep the last selection, count it and say
        why (`last_error`). Any exception counts, not only a RestError: a network error
        the client does not wrap, or a malformed reply, must not end the connector."""
        try:
            desired = await self._select()
        except Exception as exc:
            self.refresh_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "%s: listing failed, keeping %d known markets: %s",
                type(self).__name__,
                len(self._desired),
                exc,
            )
            return
        self.last_error = ""
        if self.group is not None:
            desired = {s for s in desired if self.group.owns(s)}
        self._desired = desired

    def desired(self) -> set[str]:
        return set(self._desired)

    def on_lifecycle(self, rec: dict[str, Any]) -> bool:
        return False

    async def aclose(self) -> None:
        return None


def no_credentials(env: ResolvedEnvironment) -> Any:
    """The `credentials` of a venue whose market data is public."""
    return None
