"""What a signal module sees and does (docs/signals.md).

A signal module is a Python file that defines any of:

    def on_book(ctx: Context, book: Book) -> None        # after each order-book record
    def on_trade(ctx: Context, trade: dict) -> None      # each trade record
    def on_status(ctx: Context, record: dict) -> None    # market status and lifecycle records
    def on_trades(ctx: Context, trades: polars.DataFrame) -> None   # trades, a batch at a time

and calls `ctx.emit(name, value)` to emit a signal: (time, ticker, name, value), the
time being the receive time of the record that caused it, so that the same records
give the same signals, live or replayed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ssmd.exceptions import ConfigError

if TYPE_CHECKING:
    import polars

__all__ = ["CALLBACKS", "Book", "Context", "SignalModule", "load_module"]

CALLBACKS = ("on_book", "on_trade", "on_status", "on_trades")
SCALE = 1_000_000


@dataclass(frozen=True, slots=True)
class Book:
    """A market's book after a record: YES bids and YES asks (1 - NO bids), best
    first, as (price_e6, size_e6); `valid` False across a gap until a snapshot."""

    ticker: str
    time_ns: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    valid: bool

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] / SCALE if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] / SCALE if self.asks else None

    def depth(self, side: str, levels: int = 5) -> float:
        """Contracts on the first `levels` levels of `bids` or `asks`."""
        book = self.bids if side == "bids" else self.asks
        return sum(size for _, size in book[:levels]) / SCALE


@dataclass
class Context:
    """Handed to every callback: `emit` a signal; `state` is the module's own dict."""

    signals: list[tuple[int, str, str, float]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    time_ns: int = 0  # receive time of the record being handled
    ticker: str = ""  # its market

    def emit(
        self, name: str, value: float, *, ticker: str | None = None, time_ns: int | None = None
    ) -> None:
        self.signals.append(
            (
                self.time_ns if time_ns is None else time_ns,
                self.ticker if ticker is None else ticker,
                name,
                float(value),
            )
        )


@dataclass(frozen=True)
class SignalModule:
    path: Path
    module: ModuleType
    on_book: Callable[[Context, Book], None] | None
    on_trade: Callable[[Context, dict[str, Any]], None] | None
    on_status: Callable[[Context, dict[str, Any]], None] | None
    on_trades: Callable[[Context, polars.DataFrame], None] | None


def load_module(path: str | Path) -> SignalModule:
    """Import a signal module from its file; ConfigError naming the file when it does
    not exist, fails to import or defines none of the callbacks."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"signal module {file} does not exist. Fix: give the path of a .py file")
    name = f"ssmd_signal_{abs(hash(file.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{file} cannot be imported as Python. Fix: give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{file} failed to import: {exc!r}. Fix: run it with python") from exc
    found = {c: getattr(module, c, None) for c in CALLBACKS}
    if not any(callable(f) for f in found.values()):
        raise ConfigError(
            f"{file} defines none of {', '.join(CALLBACKS)}. Fix: define at least one "
            "(docs/signals.md)"
        )
    return SignalModule(file, module, **{c: f if callable(f) else None for c, f in found.items()})
