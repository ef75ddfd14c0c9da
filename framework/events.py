"""Normalised market data events, as feeds emit them and the ingestion pipeline consumes them.

Times are integers of nanoseconds since the Unix epoch (UTC): exact, cheap to compare and to
aggregate at tens of thousands of events a second. `Tick.time_ns` is the venue's trade time;
`recv_ns` is when rata received it and `sent_ns`, when a venue says, when it was sent.

`TickBatch` carries many trades of one venue as columns: fast feeds hand those to the ingestion
pipeline instead of one `Tick` object per trade (see `framework.feeds.base.BatchFeed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Bar", "MarketEvent", "Tick", "TickBatch", "datetime_to_ns", "ns_to_datetime"]


def ns_to_datetime(ns: int) -> datetime:
    """Return an aware UTC datetime (microsecond precision) for `ns` nanoseconds since the epoch."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


def datetime_to_ns(value: datetime) -> int:
    """Return nanoseconds since the epoch for an aware datetime."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not accepted; use timezone-aware UTC")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade. `side` is 1 when the taker bought, -1 when they sold, 0 when unknown."""

    venue: str
    symbol: str
    time_ns: int
    trade_id: str
    price: float
    size: float
    side: int = 0
    recv_ns: int = 0
    sent_ns: int = 0


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of `timeframe` opening at `open_ns` (closing at `open_ns` + the timeframe)."""

    venue: str
    symbol: str
    timeframe: str
    open_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int


MarketEvent = Tick | Bar


class TickBatch:
    """Trades of one venue as columns, in arrival order: the fast path from a feed to the database.

    Per trade: `symbols` and `trade_ids` (lists of str), and numpy arrays `time_ns`, `recv_ns`,
    `sent_ns` (int64), `price`, `size` (float64) and `side` (int8), with `Tick`'s meanings. Nothing
    is validated here: the ingestion normaliser checks a batch like it checks single ticks
    (`Normaliser.check_batch`). Treat a batch as immutable once handed over.
    """

    __slots__ = ("price", "recv_ns", "sent_ns", "side", "size", "symbols", "time_ns", "trade_ids", "venue")

    def __init__(
        self,
        venue: str,
        symbols: list[str],
        trade_ids: list[str],
        time_ns: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
        side: npt.ArrayLike,
        recv_ns: npt.ArrayLike,
        sent_ns: npt.ArrayLike,
    ) -> None:
        self.venue = venue
        self.symbols = symbols
        self.trade_ids = trade_ids
        self.time_ns: npt.NDArray[np.int64] = np.asarray(time_ns, dtype=np.int64)
        self.price: npt.NDArray[np.float64] = np.asarray(price, dtype=np.float64)
        self.size: npt.NDArray[np.float64] = np.asarray(size, dtype=np.float64)
        self.side: npt.NDArray[np.int8] = np.asarray(side, dtype=np.int8)
        self.recv_ns: npt.NDArray[np.int64] = np.asarray(recv_ns, dtype=np.int64)
        self.sent_ns: npt.NDArray[np.int64] = np.asarray(sent_ns, dtype=np.int64)
        n = len(symbols)
        lengths = {len(trade_ids), *(len(a) for a in (self.time_ns, self.price, self.size, self.side))}
        if lengths | {len(self.recv_ns), len(self.sent_ns)} != {n}:
            raise ValueError("every column of a TickBatch must have one value per trade")

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f"TickBatch({self.venue!r}, {len(self)} trades)"

    @classmethod
    def empty(cls, venue: str) -> TickBatch:
        """Return a batch without trades."""
        return cls(venue, [], [], [], [], [], [], [], [])

    @classmethod
    def from_ticks(cls, ticks: Sequence[Tick]) -> TickBatch:
        """Return the (well-typed) ticks of one venue as a batch; raise ValueError for mixed venues."""
        if not ticks:
            raise ValueError("TickBatch.from_ticks needs at least one tick (its venue)")
        venue = ticks[0].venue
        if any(t.venue != venue for t in ticks):
            raise ValueError("a TickBatch holds the trades of one venue")
        n = len(ticks)
        return cls(
            venue,
            [t.symbol for t in ticks],
            [t.trade_id for t in ticks],
            np.fromiter((t.time_ns for t in ticks), np.int64, n),
            np.fromiter((t.price for t in ticks), np.float64, n),
            np.fromiter((t.size for t in ticks), np.float64, n),
            np.fromiter((t.side for t in ticks), np.int8, n),
            np.fromiter((t.recv_ns for t in ticks), np.int64, n),
            np.fromiter((t.sent_ns for t in ticks), np.int64, n),
        )

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        """Return the trades of `batches` (all of one venue) as one batch, in order."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            raise ValueError("TickBatch.concat needs at least one batch")
        venue = batches[0].venue
        if any(b.venue != venue for b in batches):
            raise ValueError("a TickBatch holds the trades of one venue")
        return cls(
            venue,
            [s for b in batches for s in b.symbols],
            [t for b in batches for t in b.trade_ids],
            *(np.concatenate([getattr(b, name) for b in batches]) for name in _ARRAYS),
        )

    def take(self, index: npt.NDArray[Any]) -> TickBatch:
        """Return the trades at `index` (integer positions, in order, or a boolean mask)."""
        positions = np.flatnonzero(index) if index.dtype == np.bool_ else index
        symbols, trade_ids = self.symbols, self.trade_ids
        picked = positions.tolist()
        return TickBatch(
            self.venue,
            [symbols[i] for i in picked],
            [trade_ids[i] for i in picked],
            *(getattr(self, name)[positions] for name in _ARRAYS),
        )

    def tick(self, i: int) -> Tick:
        """Return trade `i` as a `Tick`."""
        return Tick(
            self.venue,
            self.symbols[i],
            int(self.time_ns[i]),
            self.trade_ids[i],
            float(self.price[i]),
            float(self.size[i]),
            int(self.side[i]),
            int(self.recv_ns[i]),
            int(self.sent_ns[i]),
        )

    def ticks(self) -> list[Tick]:
        """Return every trade as a `Tick`, in order."""
        return [Tick(*row) for row in self.rows()]

    def rows(self) -> Iterable[tuple[str, str, int, str, float, float, int, int, int]]:
        """Return every trade as a tuple of `Tick`'s fields, in order (cheaper than `ticks`)."""
        venue = self.venue
        return (
            (venue, *row)
            for row in zip(
                self.symbols,
                self.time_ns.tolist(),
                self.trade_ids,
                self.price.tolist(),
                self.size.tolist(),
                self.side.tolist(),
                self.recv_ns.tolist(),
                self.sent_ns.tolist(),
                strict=True,
            )
        )


_ARRAYS = ("time_ns", "price", "size", "side", "recv_ns", "sent_ns")
