"""The panel of OHLCV bars that strategies, backtests and the live engine share.

A `Bars` panel holds five float64 frames (open, high, low, close, volume) with one row per bar and
one column per instrument. The index is the bar's *close* time (timezone-aware UTC): the row at
time t holds only what was known at t, which is what makes causal signals easy to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework.errors import DataError
from framework.instruments import Instrument

__all__ = ["FIELDS", "Bars"]

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, eq=False)
class Bars:
    """OHLCV bars of one or more instruments on a common close-time index.

    Build one with `Bars.from_frames` (one OHLCV frame per symbol) or `Bars.from_long` (a tidy
    table); take a window with `bars.iloc[a:b]` or `bars.loc[start:end]`. Prices may be NaN where an
    instrument did not trade yet; the backtest ignores those rows for that instrument.
    """

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    timeframe: str | None = None

    def __post_init__(self) -> None:
        index, columns = self.close.index, self.close.columns
        if not isinstance(index, pd.DatetimeIndex):
            raise DataError("bars index must be a DatetimeIndex of bar close times")
        if index.tz is None:
            raise DataError("bars index must be timezone-aware (UTC)")
        if not index.is_monotonic_increasing or index.has_duplicates:
            raise DataError("bars index must be strictly increasing")
        for name in FIELDS:
            frame = getattr(self, name)
            if not frame.index.equals(index) or not frame.columns.equals(columns):
                raise DataError(f"bars field {name!r} is not aligned with close")
        instruments = dict(self.instruments)
        for symbol in columns:
            instruments.setdefault(str(symbol), Instrument(str(symbol)))
        object.__setattr__(self, "instruments", {s: instruments[s] for s in map(str, columns)})

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, pd.DataFrame],
        *,
        instruments: Iterable[Instrument] = (),
        timeframe: str | None = None,
    ) -> Bars:
        """Build a panel from one OHLCV frame per symbol (columns open/high/low/close/volume in any case)."""
        if not frames:
            raise DataError("no bars given")
        normalised = {symbol: _normalise_ohlcv(frame, symbol) for symbol, frame in frames.items()}
        fields: dict[str, Any] = {
            name: pd.DataFrame({symbol: f[name] for symbol, f in normalised.items()}).sort_index() for name in FIELDS
        }
        index = pd.DatetimeIndex(fields["close"].index)
        index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")
        for name in FIELDS:
            fields[name].index = index
            fields[name].columns.name = "symbol"
            fields[name].index.name = "time"
        by_symbol = {i.symbol: i for i in instruments}
        return cls(**fields, instruments=by_symbol, timeframe=timeframe)

    @classmethod
    def from_long(
        cls, table: pd.DataFrame, *, instruments: Iterable[Instrument] = (), timeframe: str | None = None
    ) -> Bars:
        """Build a panel from a tidy table with columns time, symbol, open, high, low, close, volume."""
        missing = {"time", "symbol", *FIELDS} - set(table.columns)
        if missing:
            raise DataError(f"bars table is missing columns: {sorted(missing)}")
        frames = {str(symbol): group.set_index("time") for symbol, group in table.groupby("symbol", sort=True)}
        return cls.from_frames(frames, instruments=instruments, timeframe=timeframe)

    @property
    def index(self) -> pd.DatetimeIndex:
        """Return the bar close times."""
        index = self.close.index
        assert isinstance(index, pd.DatetimeIndex)
        return index

    @property
    def symbols(self) -> list[str]:
        """Return the instrument symbols, in column order."""
        return [str(c) for c in self.close.columns]

    def __len__(self) -> int:
        return len(self.close.index)

    def field(self, name: str) -> pd.DataFrame:
        """Return one OHLCV field by name."""
        if name not in FIELDS:
            raise DataError(f"unknown bars field {name!r}; valid: {', '.join(FIELDS)}")
        frame: pd.DataFrame = getattr(self, name)
        return frame

    def rows(self, mask: pd.Series | np.ndarray) -> Bars:
        """Return the bars at the rows where `mask` is true."""
        values = np.asarray(mask, dtype=bool)
        return self._map(lambda frame: frame[values])

    def _map(self, take: Any) -> Bars:
        fields = {name: take(getattr(self, name)) for name in FIELDS}
        return Bars(**fields, instruments=self.instruments, timeframe=self.timeframe)

    @property
    def iloc(self) -> _Indexer:
        """Slice rows by position: `bars.iloc[-100:]`."""
        return _Indexer(self, positional=True)

    @property
    def loc(self) -> _Indexer:
        """Slice rows by time: `bars.loc["2020":"2021"]`."""
        return _Indexer(self, positional=False)

    def select(self, symbols: Iterable[str]) -> Bars:
        """Return a panel with only `symbols`, in that order."""
        wanted = list(symbols)
        unknown = [s for s in wanted if s not in self.instruments]
        if unknown:
            raise DataError(f"symbols not in bars: {unknown}; available: {self.symbols}")
        fields = {name: getattr(self, name)[wanted] for name in FIELDS}
        return Bars(**fields, instruments={s: self.instruments[s] for s in wanted}, timeframe=self.timeframe)

    def to_long(self) -> pd.DataFrame:
        """Return a tidy table (time, symbol, open, high, low, close, volume), dropping empty rows."""
        stacked = {name: getattr(self, name).stack(future_stack=True) for name in FIELDS}
        table = pd.DataFrame(stacked).dropna(subset=["close"]).reset_index()
        return table.rename(columns={table.columns[0]: "time", table.columns[1]: "symbol"})

    def resample(self, rule: str) -> Bars:
        """Aggregate to a coarser timeframe (`"1W"`, `"4h"`...), labelling each bar by its close time."""
        offset = pd.tseries.frequencies.to_offset(rule)
        how = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        fields = {
            name: getattr(self, name).resample(offset, label="right", closed="right").agg(how[name]) for name in FIELDS
        }
        keep = fields["close"].notna().any(axis=1)
        fields = {name: frame[keep] for name, frame in fields.items()}
        fields["volume"] = fields["volume"].where(fields["close"].notna())
        return Bars(**fields, instruments=self.instruments, timeframe=rule)

    def __repr__(self) -> str:
        if len(self) == 0:
            return f"Bars(0 bars, {self.symbols})"
        return (
            f"Bars({len(self)} bars x {len(self.symbols)} instruments {self.symbols[:5]}"
            f"{'...' if len(self.symbols) > 5 else ''}, {self.index[0]} .. {self.index[-1]}, "
            f"timeframe={self.timeframe})"
        )


class _Indexer:
    def __init__(self, bars: Bars, *, positional: bool) -> None:
        self._bars = bars
        self._positional = positional

    def __getitem__(self, key: Any) -> Bars:
        if not isinstance(key, slice):
            raise TypeError("Bars can only be sliced by rows, e.g. bars.iloc[10:20]")
        if self._positional:
            return self._bars._map(lambda frame: frame.iloc[key])
        return self._bars._map(lambda frame: frame.loc[key])


def _normalise_ohlcv(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    renamed = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    missing = [name for name in FIELDS if name not in renamed.columns]
    if "volume" in missing:
        renamed["volume"] = np.nan
        missing.remove("volume")
    if missing:
        raise DataError(f"{symbol}: missing OHLCV columns {missing}")
    if not isinstance(renamed.index, pd.DatetimeIndex):
        raise DataError(f"{symbol}: the index must hold bar times")
    out = renamed[list(FIELDS)].astype("float64")
    if out.index.has_duplicates:
        raise DataError(f"{symbol}: duplicate bar times, first at {out.index[out.index.duplicated()][0]}")
    prices = out[["open", "high", "low", "close"]].to_numpy()
    finite = np.isfinite(prices)
    if (prices[finite] <= 0).any():
        raise DataError(f"{symbol}: prices must be positive")
    return out
