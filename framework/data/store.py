"""Bars in PostgreSQL as research panels: import files, export, and `load_bars` for notebooks.

`load_bars` returns exactly the `Bars` panel a backtest takes, read from the bars the live side
stored: a notebook backtests the data the runner recorded, not a copy of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import pandas as pd

from framework.bars import FIELDS, Bars
from framework.errors import DataError
from framework.events import Bar
from framework.instruments import Instrument
from framework.settings import Settings, load_settings
from framework.storage.database import open_database
from framework.storage.marketdata import bar_rows, fetch_bars, fetch_instruments, upsert_instruments, write_bars
from framework.timeframes import timeframe_timedelta

__all__ = ["frame_to_bars", "import_frame", "load_bars", "read_bars"]


def frame_to_bars(frame: pd.DataFrame, instrument: Instrument, timeframe: str) -> list[Bar]:
    """Return `Bar` events from an OHLCV frame indexed by bar *open* time (UTC)."""
    missing = [c for c in FIELDS if c not in frame.columns]
    if missing:
        raise DataError(f"{instrument.symbol}: missing OHLCV columns {missing}")
    clean = frame.dropna(subset=["open", "high", "low", "close"])
    index = pd.DatetimeIndex(clean.index)
    index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")
    volume = clean["volume"].fillna(0.0)
    vwap = clean["vwap"] if "vwap" in clean.columns else (clean["high"] + clean["low"] + clean["close"]) / 3
    trades = clean["trades"] if "trades" in clean.columns else pd.Series(0, index=clean.index)
    return [
        Bar(
            instrument.venue,
            instrument.symbol,
            timeframe,
            int(t),
            float(o),
            float(h),
            float(lo),
            float(c),
            float(v),
            float(w),
            int(n),
        )
        for t, o, h, lo, c, v, w, n in zip(
            index.asi8, clean["open"], clean["high"], clean["low"], clean["close"], volume, vwap, trades, strict=True
        )
    ]


async def import_frame(
    pool: asyncpg.Pool, frame: pd.DataFrame, instrument: Instrument, timeframe: str, *, chunk: int = 10_000
) -> int:
    """Store an open-time-indexed OHLCV frame as bars (idempotent); return the rows written."""
    timeframe_timedelta(timeframe)
    ids = await upsert_instruments(pool, [instrument])
    bars = frame_to_bars(frame, instrument, timeframe)
    written = 0
    async with pool.acquire() as conn:
        for start in range(0, len(bars), chunk):
            written += await write_bars(conn, bar_rows(bars[start : start + chunk], ids))
    return written


async def read_bars(
    pool: asyncpg.Pool,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    venue: str | None = None,
) -> Bars:
    """Return stored bars as a panel indexed by bar close time (open time + timeframe)."""
    step = timeframe_timedelta(timeframe)
    table = await fetch_bars(pool, symbols, timeframe, start, end, venue)
    if table.empty:
        raise DataError(f"no {timeframe} bars stored for {', '.join(symbols)} in the requested range")
    known = await fetch_instruments(pool, venue)
    instruments = [inst for (_, symbol), (_, inst) in known.items() if symbol in symbols]
    table["time"] = pd.DatetimeIndex(table["open_time"]) + step
    frames = {
        str(symbol): group.set_index("time")[list(FIELDS)] for symbol, group in table.groupby("symbol", sort=False)
    }
    ordered = {s: frames[s] for s in symbols if s in frames}
    return Bars.from_frames(ordered, instruments=instruments, timeframe=timeframe)


def load_bars(
    symbols: str | Sequence[str],
    timeframe: str,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    venue: str | None = None,
    settings: Settings | None = None,
) -> Bars:
    """Return stored bars of `symbols` as the panel backtests take (for notebooks and scripts).

    Opens the configured database (embedded by default), reads bars whose open time is in
    [start, end), and closes it. Inside a running event loop, use `read_bars` with a pool instead.

    >>> from framework.data import load_bars                                  # doctest: +SKIP
    >>> bars = load_bars(["BTC/USDT", "ETH/USDT"], "1m", "2026-11-01", "2026-11-02")
    """
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    begin, finish = _as_time(start), _as_time(end)

    async def run() -> Bars:
        async with open_database(settings or load_settings()) as db:
            return await read_bars(db.pool, names, timeframe, begin, finish, venue=venue)

    return asyncio.run(run())


def _as_time(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()
