"""The `Feed` seam: every source of market data (synthetic, replay, a real exchange) looks like this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from framework.events import MarketEvent, TickBatch
from framework.instruments import Instrument

__all__ = ["BatchFeed", "Feed", "FeedHealth"]


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A feed's state: connected, when it last heard anything, and which instruments went quiet."""

    name: str
    connected: bool
    last_message_ns: int | None
    stale: frozenset[str] = field(default_factory=frozenset)
    reconnects: int = 0
    messages: int = 0


@runtime_checkable
class Feed(Protocol):
    """A source of normalised market events.

    `connect` opens the source; `events` yields ticks (and bars where the venue sends them) until
    `close` is called or the source ends (a replay); `health` is cheap and may be called anytime.
    A feed never raises on a bad message: it counts and skips it (see the ingestion normaliser).
    """

    name: str

    @property
    def instruments(self) -> list[Instrument]:
        """Return the instruments this feed serves."""
        ...

    async def connect(self) -> None:
        """Open the source."""
        ...

    def events(self) -> AsyncIterator[MarketEvent]:
        """Yield events in arrival order."""
        ...

    async def close(self) -> None:
        """Stop the source; `events` ends soon after."""
        ...

    def health(self) -> FeedHealth:
        """Return the feed's current health."""
        ...


@runtime_checkable
class BatchFeed(Feed, Protocol):
    """A feed that can also hand over its trades as columns: the fast path into ingestion.

    `batches` yields the same events as `events`, in the same order, except that runs of trades
    come as `TickBatch`es (bars, and anything a feed cannot put in a batch, come as they are).
    Use one or the other on a feed, not both.
    """

    def batches(self) -> AsyncIterator[TickBatch | MarketEvent]:
        """Yield trades as batches (and other events as they are) in arrival order."""
        ...
