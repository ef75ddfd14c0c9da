"""Replay history as a feed: ticks or bars from PostgreSQL or from CSV/Parquet files, in time order.

The same engine that runs live runs on a replay: give it a `SimulatedClock` and it sees the
history's own time line; give it a speed and a trader watches the day go by ten times faster.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

import asyncpg
import numpy as np
import pandas as pd

from framework.clock import Clock, WallClock, sleep_until_or_set
from framework.data.files import read_ohlcv
from framework.errors import DataError, UnknownNameError
from framework.events import Bar, MarketEvent, Tick
from framework.feeds.base import FeedHealth
from framework.instruments import Instrument
from framework.storage.marketdata import fetch_instruments
from framework.timeframes import timeframe_ns

__all__ = ["DatabaseSource", "FileSource", "ReplayFeed", "ReplayKind", "ReplayRow", "ReplaySource"]

ReplayKind = Literal["ticks", "bars"]
TickFields = tuple[str, str, int, str, float, float, int]
ReplayRow = TickFields | Bar
"""What a source yields: a bar, or a tick's fields up to `side` (the feed stamps `recv_ns`)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST: Final = datetime(1, 1, 2, tzinfo=UTC)  # stand-ins for an open start / end, inside timestamptz
_LAST: Final = datetime(9999, 12, 30, tzinfo=UTC)
_YIELD_EVERY: Final = 1024  # events between forced yields to the event loop when not sleeping


class ReplaySource(Protocol):
    """Where a replay reads from: `open` returns the instruments, `rows` yields them in time order."""

    async def open(self) -> list[Instrument]:
        """Check the request and return the instruments it covers."""
        ...

    def rows(self) -> AsyncGenerator[ReplayRow, None]:
        """Yield ticks (as fields) or bars in replay order."""
        ...


@runtime_checkable
class _Settable(Protocol):
    def advance_to(self, when_ns: int) -> None: ...


def event_time_ns(row: ReplayRow) -> int:
    """Return when an event happened: a tick's trade time, a bar's *close* time (when it is known)."""
    if isinstance(row, Bar):
        return row.open_ns + timeframe_ns(row.timeframe)
    return row[2]


class ReplayFeed:
    """Replay ticks or bars in time order, at real speed, at a multiple, or as fast as possible.

    Build one with `ReplayFeed.from_database(pool, venue, symbols, ...)` or
    `ReplayFeed.from_files(paths, ...)` (or give any `ReplaySource`). Events are emitted in time
    order across all symbols; ties are broken by symbol, then by trade id (database) or file order.

    A bar is emitted at its *close* time (`open_ns` + timeframe): that is when it is known, so a
    strategy replayed bar by bar never sees a bar before it has closed.

    Pacing: `speed=1.0` replays the history's gaps in real time, `speed=10` ten times faster,
    `speed=None` (or 0) as fast as the consumer reads. The waiting happens on `pacer`, which
    defaults to `clock` (the wall clock when none is given).

    Simulated time: when `clock` is a `SimulatedClock` (anything with `advance_to`), the feed
    advances it to each event's time before emitting it, so everything downstream sees the
    history's time; the pacing then happens on the wall clock (or the `pacer` given, which tests
    make another `SimulatedClock` to check the speed without waiting).

    Every tick's `recv_ns` is the clock's time when it is emitted.

    Example::

        clock = SimulatedClock()
        feed = ReplayFeed.from_files(["btc.csv"], kind="bars", timeframe="1m", speed=None, clock=clock)
        async for bar in feed.events():
            ...  # clock.now_ns() is the bar's close time
    """

    def __init__(
        self,
        source: ReplaySource,
        *,
        speed: float | None = 1.0,
        clock: Clock | None = None,
        pacer: Clock | None = None,
        name: str = "replay",
    ) -> None:
        if speed is not None and not speed >= 0:
            raise ValueError(f"speed must be a multiple of real time (> 0) or None, got {speed}")
        self.name = name
        self._source = source
        self._speed = speed or None
        self._clock: Clock = clock if clock is not None else WallClock()
        self._settable = self._clock if isinstance(self._clock, _Settable) else None
        self._pacer: Clock = pacer if pacer is not None else (WallClock() if self._settable else self._clock)
        self._instruments: list[Instrument] = []
        self._opened = False
        self._connected = False
        self._closed = False
        self._close_event = asyncio.Event()
        self._messages = 0
        self._last_ns: int | None = None

    @classmethod
    def from_database(
        cls,
        pool: asyncpg.Pool,
        venue: str,
        symbols: Sequence[str],
        *,
        kind: ReplayKind = "ticks",
        timeframe: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int | None = None,
        speed: float | None = 1.0,
        clock: Clock | None = None,
        pacer: Clock | None = None,
        name: str = "replay",
    ) -> ReplayFeed:
        """Replay stored ticks (or `timeframe` bars) of `symbols` on `venue` from `start` to before `end`.

        Reads each instrument in pages of `page_size` rows (keyset pagination on the primary key,
        so each page is an index range scan however deep the replay is), merging them in time
        order; at most two pages per instrument (the one replayed and the next) are in memory.
        """
        source = DatabaseSource(
            pool, venue, symbols, kind=kind, timeframe=timeframe, start=start, end=end, page_size=page_size
        )
        return cls(source, speed=speed, clock=clock, pacer=pacer, name=name)

    @classmethod
    def from_files(
        cls,
        paths: str | Path | Sequence[str | Path],
        *,
        kind: ReplayKind = "ticks",
        timeframe: str | None = None,
        symbol: str | None = None,
        venue: str = "SIM",
        instruments: Sequence[Instrument] = (),
        speed: float | None = 1.0,
        clock: Clock | None = None,
        pacer: Clock | None = None,
        name: str = "replay",
    ) -> ReplayFeed:
        """Replay ticks or `timeframe` bars from CSV/Parquet files (see `FileSource` for the columns)."""
        source = FileSource(paths, kind=kind, timeframe=timeframe, symbol=symbol, venue=venue, instruments=instruments)
        return cls(source, speed=speed, clock=clock, pacer=pacer, name=name)

    @property
    def instruments(self) -> list[Instrument]:
        """Return the instruments replayed (known once connected)."""
        return list(self._instruments)

    async def connect(self) -> None:
        """Open the source: check the symbols (and load the files) before the first event."""
        if self._closed:
            raise RuntimeError(f"{self.name}: feed is closed")
        if not self._opened:
            self._instruments = await self._source.open()
            self._opened = True
        self._connected = True

    async def close(self) -> None:
        """Stop the replay: `events()` ends at once, even in the middle of a long wait."""
        self._closed = True
        self._connected = False
        self._close_event.set()

    def health(self) -> FeedHealth:
        """Return connection state, the clock time of the last emission and the number emitted."""
        return FeedHealth(self.name, self._connected, self._last_ns, messages=self._messages)

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Yield the history in time order until it ends or `close()` is called."""
        if not self._connected:
            await self.connect()
        clock, pacer, settable, speed = self._clock, self._pacer, self._settable, self._speed
        origin: tuple[int, int] | None = None  # (event time, pacer time) of the first event
        since_yield = 0
        async with aclosing(self._source.rows()) as rows:
            async for row in rows:
                if self._closed:
                    break
                when = event_time_ns(row)
                if speed is not None:
                    if origin is None:
                        origin = (when, pacer.now_ns())
                    target = origin[1] + int((when - origin[0]) / speed)
                    if target > pacer.now_ns():
                        await sleep_until_or_set(pacer, target, self._close_event)
                        since_yield = 0
                        if self._closed:
                            break
                if settable is not None:
                    settable.advance_to(when)
                now = clock.now_ns()
                event: MarketEvent = row if isinstance(row, Bar) else Tick(*row, now)
                self._messages += 1
                self._last_ns = now
                yield event
                since_yield += 1
                if since_yield >= _YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
        self._connected = False


async def _merge(streams: Sequence[_Pager]) -> AsyncGenerator[ReplayRow, None]:
    """Merge per-instrument pages (each in time order) by (event time, stream position)."""
    try:
        pages = list(await asyncio.gather(*(stream.next_page() for stream in streams)))
        heap = [(page[0][0], i) for i, page in enumerate(pages) if page]
        heapq.heapify(heap)
        positions = [0] * len(streams)
        while heap:
            i = heap[0][1]
            page, pos = pages[i], positions[i]
            yield page[pos][1]
            pos += 1
            if pos == len(page):
                page = pages[i] = await streams[i].next_page()
                pos = 0
                if not page:
                    heapq.heappop(heap)
                    continue
            positions[i] = pos
            heapq.heapreplace(heap, (page[pos][0], i))
    finally:
        for stream in streams:
            stream.close()


class _Pager(Protocol):
    async def next_page(self) -> list[tuple[int, ReplayRow]]: ...

    def close(self) -> None: ...


def _us_to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_TICKS_FIRST = """
    SELECT (extract(epoch FROM time) * 1000000)::bigint AS us, trade_id, price, size, side FROM ticks
    WHERE instrument_id = $1 AND time >= $2 AND time < $3 ORDER BY time, trade_id LIMIT $4
"""
_TICKS_NEXT = """
    SELECT (extract(epoch FROM time) * 1000000)::bigint AS us, trade_id, price, size, side FROM ticks
    WHERE instrument_id = $1 AND (time, trade_id) > ($2, $5) AND time < $3 ORDER BY time, trade_id LIMIT $4
"""
_BARS_FIRST = """
    SELECT (extract(epoch FROM open_time) * 1000000)::bigint AS us, open, high, low, close, volume, vwap, trades
    FROM bars WHERE instrument_id = $1 AND timeframe = $5 AND open_time >= $2 AND open_time < $3
    ORDER BY open_time LIMIT $4
"""
_BARS_NEXT = """
    SELECT (extract(epoch FROM open_time) * 1000000)::bigint AS us, open, high, low, close, volume, vwap, trades
    FROM bars WHERE instrument_id = $1 AND timeframe = $5 AND open_time > $2 AND open_time < $3
    ORDER BY open_time LIMIT $4
"""


class _DatabasePager:
    """One instrument's rows, a page at a time, resuming after the last (time, trade id) seen.

    The next page is fetched in the background while the current one is replayed, so the
    replay does not stall on a database round trip at every page boundary.
    """

    def __init__(self, source: DatabaseSource, instrument: Instrument, instrument_id: int) -> None:
        self._source = source
        self._instrument = instrument
        self._id = instrument_id
        self._after: tuple[datetime, str] | None = None
        self._done = False
        self._pending: asyncio.Future[list[tuple[int, ReplayRow]]] | None = None

    async def next_page(self) -> list[tuple[int, ReplayRow]]:
        pending = self._pending or asyncio.ensure_future(self._fetch())
        self._pending = None
        page = await pending
        if not self._done:
            self._pending = asyncio.ensure_future(self._fetch())
        return page

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # a prefetch that failed after the replay stopped: nothing to report
        elif pending is not None:
            pending.cancel()

    async def _fetch(self) -> list[tuple[int, ReplayRow]]:
        src = self._source
        if self._done:
            return []
        start = src.start or _FIRST
        end = src.end or _LAST
        bars = src.kind == "bars"
        if self._after is None:
            query, args = (_BARS_FIRST, (src.timeframe,)) if bars else (_TICKS_FIRST, ())
            start_arg = start
        else:
            start_arg, last_id = self._after
            query, args = (_BARS_NEXT, (src.timeframe,)) if bars else (_TICKS_NEXT, (last_id,))
        async with src.pool.acquire() as conn:
            records = await conn.fetch(query, self._id, start_arg, end, src.page_size, *args)
        if len(records) < src.page_size:
            self._done = True
        if not records:
            return []
        last = records[-1]
        self._after = (_us_to_datetime(last["us"]), "" if bars else last["trade_id"])
        venue, symbol = self._instrument.venue, self._instrument.symbol
        if bars:
            tf, span = src.timeframe or "", src.timeframe_ns
            return [
                (us * 1000 + span, Bar(venue, symbol, tf, us * 1000, o, h, lo, c, v, _nan_if_none(vw), n))
                for us, o, h, lo, c, v, vw, n in records
            ]
        return [(us * 1000, (venue, symbol, us * 1000, tid, p, q, side)) for us, tid, p, q, side in records]


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


class DatabaseSource:
    """Stored ticks or bars of some instruments of one venue, read in keyset-paginated pages.

    Ticks are paged by (time, trade_id) and bars by open time, each instrument separately, so
    every page is a range scan of the table's primary key. `page_size` defaults to 200,000 rows
    shared among the instruments (256 to 20,000 each). A bar's NULL vwap becomes NaN.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        venue: str,
        symbols: Sequence[str],
        *,
        kind: ReplayKind = "ticks",
        timeframe: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int | None = None,
    ) -> None:
        if kind not in ("ticks", "bars"):
            raise ValueError(f"kind must be 'ticks' or 'bars', got {kind!r}")
        if kind == "bars" and timeframe is None:
            raise ValueError("replaying bars needs a timeframe")
        if not symbols:
            raise ValueError("give at least one symbol to replay")
        for bound in (start, end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("naive datetimes are not accepted; use timezone-aware UTC")
        self.pool = pool
        self.venue = venue
        self.symbols = sorted(set(symbols))
        self.kind = kind
        self.timeframe = timeframe if kind == "bars" else None
        self.timeframe_ns = timeframe_ns(self.timeframe) if self.timeframe else 0
        self.start = start
        self.end = end
        default = min(20_000, max(256, 200_000 // len(self.symbols)))
        self.page_size = page_size or default
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._ids: dict[str, tuple[int, Instrument]] = {}

    async def open(self) -> list[Instrument]:
        """Look the instruments up; raise `UnknownNameError` for a symbol the venue does not have."""
        known = {symbol: entry for (_, symbol), entry in (await fetch_instruments(self.pool, self.venue)).items()}
        for symbol in self.symbols:
            if symbol not in known:
                raise UnknownNameError(f"instrument on {self.venue}", symbol, sorted(known))
        self._ids = {s: known[s] for s in self.symbols}
        return [self._ids[s][1] for s in self.symbols]

    async def rows(self) -> AsyncGenerator[ReplayRow, None]:
        """Yield the rows of all instruments merged in time order (ties by symbol)."""
        if not self._ids:
            await self.open()
        pagers = [_DatabasePager(self, self._ids[s][1], self._ids[s][0]) for s in self.symbols]
        async with aclosing(_merge(pagers)) as merged:
            async for row in merged:
                yield row


class FileSource:
    """Ticks or bars from CSV/Parquet files, loaded when opened and replayed in time order.

    Times are read by `framework.data.files.read_ohlcv` (a time/timestamp/date column or the
    index; integers are milliseconds since the epoch). Tick files have `price` and `size` (or
    `amount`/`qty`/`quantity`), optionally `side` (1/-1/0 or buy/sell) and `trade_id` (or `id`;
    missing ids are numbered per symbol in time order). Bar files have `open`, `high`, `low`,
    `close`, optionally `volume` (else 0), `vwap` (else NaN) and `trades` (else 0), timed by
    their open time. The symbol is the file's `symbol` column, else `symbol`, else the file name's
    stem in upper case. Instruments not given in `instruments` get default tick sizes on `venue`.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        kind: ReplayKind = "ticks",
        timeframe: str | None = None,
        symbol: str | None = None,
        venue: str = "SIM",
        instruments: Sequence[Instrument] = (),
    ) -> None:
        if kind not in ("ticks", "bars"):
            raise ValueError(f"kind must be 'ticks' or 'bars', got {kind!r}")
        if kind == "bars" and timeframe is None:
            raise ValueError("replaying bars needs a timeframe")
        self.paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("give at least one file to replay")
        self.kind = kind
        self.timeframe = timeframe
        self.timeframe_ns = timeframe_ns(timeframe) if timeframe and kind == "bars" else 0
        self.symbol = symbol
        self.venue = venue
        self._given = {i.symbol: i for i in instruments}
        self._table: pd.DataFrame | None = None
        self._instruments: dict[str, Instrument] = {}

    async def open(self) -> list[Instrument]:
        """Load and sort the files (in a worker thread) and return their instruments."""
        if self._table is None:
            self._table = await asyncio.to_thread(self._load)
            for s in sorted(self._table["symbol"].unique()):
                self._instruments[s] = self._given.get(s) or Instrument(s, venue=self.venue)
        return list(self._instruments.values())

    async def rows(self) -> AsyncGenerator[ReplayRow, None]:
        """Yield the loaded rows in time order, in chunks converted from the columns."""
        if self._table is None:
            await self.open()
        table = self._table
        assert table is not None
        venues = {s: i.venue for s, i in self._instruments.items()}
        for begin in range(0, len(table), 8192):
            chunk = table.iloc[begin : begin + 8192]
            symbols = chunk["symbol"].tolist()
            times = chunk["time_ns"].tolist()
            if self.kind == "ticks":
                cols = [chunk[c].tolist() for c in ("trade_id", "price", "size", "side")]
                for s, t, tid, price, size, side in zip(symbols, times, *cols, strict=True):
                    yield (venues[s], s, t, tid, price, size, side)
            else:
                tf = self.timeframe or ""
                cols = [chunk[c].tolist() for c in ("open", "high", "low", "close", "volume", "vwap", "trades")]
                for s, t, o, h, lo, c, v, vw, n in zip(symbols, times, *cols, strict=True):
                    yield Bar(venues[s], s, tf, t, o, h, lo, c, v, vw, n)

    def _load(self) -> pd.DataFrame:
        frames = [self._read(path) for path in self.paths]
        table = pd.concat(frames, ignore_index=True)
        return table.sort_values(["time_ns", "symbol"], kind="stable", ignore_index=True)

    def _read(self, path: Path) -> pd.DataFrame:
        raw = read_ohlcv(path)
        frame = pd.DataFrame(index=range(len(raw)))
        frame["time_ns"] = pd.DatetimeIndex(raw.index).as_unit("ns").asi8
        if "symbol" in raw.columns:
            frame["symbol"] = raw["symbol"].astype(str).to_numpy()
        else:
            frame["symbol"] = self.symbol or path.name.split(".")[0].upper()
        if self.kind == "ticks":
            size_col = next((c for c in ("size", "amount", "qty", "quantity") if c in raw.columns), None)
            if "price" not in raw.columns or size_col is None:
                raise DataError(f"{path.name}: a tick file needs price and size columns")
            frame["price"] = raw["price"].to_numpy(dtype=float)
            frame["size"] = raw[size_col].to_numpy(dtype=float)
            frame["side"] = _sides(raw["side"], path.name) if "side" in raw.columns else 0
            id_col = next((c for c in ("trade_id", "id") if c in raw.columns), None)
            if id_col is not None:
                frame["trade_id"] = raw[id_col].astype(str).to_numpy()
                return frame
            frame = frame.sort_values("time_ns", kind="stable", ignore_index=True)
            frame["trade_id"] = [f"{n:012d}" for n in frame.groupby("symbol").cumcount().add(1).tolist()]
            return frame
        missing = [c for c in ("open", "high", "low", "close") if c not in raw.columns]
        if missing:
            raise DataError(f"{path.name}: a bar file needs open, high, low and close (missing {', '.join(missing)})")
        for column in ("open", "high", "low", "close"):
            frame[column] = raw[column].to_numpy(dtype=float)
        frame["volume"] = raw["volume"].to_numpy(dtype=float) if "volume" in raw.columns else 0.0
        frame["vwap"] = raw["vwap"].to_numpy(dtype=float) if "vwap" in raw.columns else np.nan
        frame["trades"] = raw["trades"].to_numpy(dtype=np.int64) if "trades" in raw.columns else 0
        return frame


def _sides(values: pd.Series, name: str) -> np.ndarray:
    """Return sides as 1/-1/0 from numbers or buy/sell words."""
    if pd.api.types.is_numeric_dtype(values):
        sides = np.sign(values.fillna(0).to_numpy(dtype=float)).astype(np.int64)
        return sides
    words = {"buy": 1, "b": 1, "bid": 1, "sell": -1, "s": -1, "ask": -1, "": 0, "nan": 0, "none": 0}
    lowered = values.fillna("").astype(str).str.strip().str.lower()
    unknown = sorted(set(lowered) - set(words))
    if unknown:
        raise DataError(f"{name}: unknown side values {unknown[:5]} (use 1/-1/0 or buy/sell)")
    return lowered.map(words).to_numpy(dtype=np.int64)
