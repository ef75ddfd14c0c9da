"""The generic venue profile `CcxtFeed` uses, and the lookup of a venue's own profile.

A profile answers the few questions the generic feed cannot answer from ccxt's unified API alone:
which stream to watch so that its trade ids match the REST endpoint used for backfill, how to ask
for the trades after a given one, and whether trade ids are a gap-free sequence. A venue with
quirks gets a module of its own here (`framework.feeds.venues.<ccxt id>`, exposing `VENUE`); every
other exchange gets `CcxtVenue`, which only relies on ccxt's unified `since` parameter.

A profile may also read the venue's public trade stream itself (`trade_stream`) instead of through
ccxt's `watch_trades`: ccxt's generic websocket client costs tens of microseconds of Python per
trade, a direct reader of one known message format a few. The feed keeps using ccxt for markets
and REST backfill either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from framework.venues import find_profile

__all__ = ["CcxtVenue", "TradeCursor", "TradeSink", "TradeStream", "venue_for"]


class TradeSink(Protocol):
    """Where a `TradeStream` delivers: `CcxtFeed`'s per-symbol cursors and its bounded outbox."""

    room: asyncio.Event
    """Set while the consumer has room; a stream waits for it before reading its next message."""

    def trade(
        self,
        symbol: str,
        trade_id: str,
        seq: int | None,
        time_ms: int,
        price: float,
        size: float,
        side: int,
        sent_ns: int,
    ) -> None:
        """Take one streamed trade (`symbol` unified, `side` 1 buy / -1 sell / 0 unknown)."""
        ...

    def bad(self, reason: str, raw: object) -> None:
        """Count and log a message that is not a usable trade."""
        ...


class TradeStream(Protocol):
    """A venue's public trade stream read directly, for every symbol of a feed."""

    async def run(self, sink: TradeSink) -> None:
        """Stream into `sink` until the connection fails; then raise (`TransientError`: the feed reconnects)."""
        ...


@dataclass(slots=True)
class TradeCursor:
    """Where a symbol's emitted trades end: the last trade's time and id, and the ids seen at that millisecond.

    `seq` is the id as an integer when the venue numbers trades with a gap-free sequence; then order
    and duplicates are decided by it alone. Otherwise a trade is new when it is later than
    `time_ms`, or at `time_ms` with an id not in `ids` (which only ever holds one millisecond's ids).
    """

    time_ms: int
    trade_id: str
    seq: int | None = None
    ids: set[str] = field(default_factory=set)

    def admits(self, time_ms: int, trade_id: str, seq: int | None) -> bool:
        """Return whether a trade comes after everything emitted so far."""
        if self.seq is not None and seq is not None:
            return seq > self.seq
        if time_ms != self.time_ms:
            return time_ms > self.time_ms
        return trade_id not in self.ids

    def advance(self, time_ms: int, trade_id: str, seq: int | None) -> None:
        """Record a trade as emitted."""
        if time_ms != self.time_ms:
            self.ids.clear()
            self.time_ms = time_ms
        self.ids.add(trade_id)
        self.trade_id = trade_id
        self.seq = seq


class CcxtVenue:
    """The generic profile: watch ccxt's default trade stream, backfill with `fetch_trades(since=...)`."""

    sequenced = False
    """Whether trade ids are consecutive integers per symbol (so a jump is a gap to backfill)."""

    def config(self, symbols: Sequence[str]) -> dict[str, Any]:
        """Return ccxt constructor settings this venue needs for `symbols` (user settings override them)."""
        return {}

    def seq(self, trade_id: str) -> int | None:
        """Return the trade id as a sequence number, or None when ids are not a sequence."""
        return None

    def backfill_query(self, cursor: TradeCursor) -> tuple[int | None, dict[str, Any]]:
        """Return `fetch_trades`'s `since` (ms) and extra params for the page after `cursor`."""
        return cursor.time_ms, {}

    def sent_ns(self, trade: Mapping[str, Any]) -> int:
        """Return when the venue sent a streamed trade (ns since the epoch), 0 when it does not say."""
        return 0

    def trade_stream(self, exchange: Any, symbols: Sequence[str]) -> TradeStream | None:
        """Return a direct reader of the venue's trade stream for `symbols`, or None to use ccxt's `watch_trades`."""
        return None


def venue_for(exchange_id: str) -> CcxtVenue:
    """Return the profile of a ccxt exchange id: its own module's `VENUE` if there is one, else `CcxtVenue()`."""
    return find_profile(__package__ or "framework.feeds.venues", exchange_id, CcxtVenue())
