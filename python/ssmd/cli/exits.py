"""The exit codes of the long-running component commands (connector, archiver, gateway,
up, market): 2 for a configuration error, 3 for an authentication or storage failure,
each with its one-line message (`error: ... Fix: ...`) on stderr. `ssmd up` reads 2 and 3
as "do not restart". `ssmd data` maps errors the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ssmd.exceptions import AuthenticationError, ConfigError, StorageError

__all__ = ["component_errors"]


@contextmanager
def component_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except AuthenticationError as exc:
        typer.echo(f"error: authentication failed: {exc}", err=True)
        raise typer.Exit(3) from None
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
