"""Proving a Kalshi key works: one signed GET of the account's balance on the environment's
REST endpoint (the simulator checks the signature as Kalshi does). Only the answer's
status is used; the balance itself is never shown or kept."""

from __future__ import annotations

from typing import Final

from ssmd.exceptions import AuthenticationError, KeyRejected
from ssmd.keys.store import KalshiKey
from ssmd.venues.kalshi.rest import RestClient
from ssmd.venues.kalshi.ws import Credentials

__all__ = ["BALANCE_PATH", "verify_key"]

BALANCE_PATH: Final = "/portfolio/balance"  # under the REST base URL (.../trade-api/v2)


async def verify_key(key: KalshiKey, rest_url: str, timeout: float = 10.0) -> None:
    """Return when the exchange accepts a request signed with `key`; KeyRejected when it
    refuses it (HTTP 401), RestError when it cannot say (unreachable, other statuses)."""
    client = RestClient(
        rest_url, Credentials(key.key_id, key.private_key), max_retries=2, timeout=timeout
    )
    try:
        await client.get(BALANCE_PATH)
    except AuthenticationError:
        raise KeyRejected(f"{rest_url} refused key {key.fingerprint}") from None
    finally:
        await client.aclose()
