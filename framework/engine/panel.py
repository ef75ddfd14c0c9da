"""`RollingPanel`: the last N closed bars of a universe, kept in numpy ring buffers.

The strategy engine appends one row per bar close and hands strategies a `Bars` window of the
newest rows, the same panel type the backtest gives them. A symbol that did not trade in a period
(no bar) is carried forward: its open, high, low and close repeat the previous close and its volume
is 0, which is how a panel of stored bars reads after a forward fill. Before its first bar a symbol
is NaN, as in the backtest.

Hand-written because the window must be rebuilt every bar for up to 500 instruments with no
per-row Python work: a pandas concat/append per bar costs far more than copying two numpy slices.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from framework.bars import FIELDS, Bars
from framework.errors import DataError
from framework.events import Bar
from framework.instruments import Instrument

__all__ = ["RollingPanel"]

_TOKENS = itertools.count(1)


class RollingPanel:
    """The newest `capacity` bar rows of `symbols` (one row per close time)."""

    def __init__(
        self,
        symbols: Sequence[str],
        capacity: int,
        *,
        instruments: Mapping[str, Instrument] | None = None,
        timeframe: str | None = None,
    ) -> None:
        if capacity < 1:
            raise DataError(f"panel capacity must be at least 1, got {capacity}")
        if len(set(symbols)) != len(symbols) or not symbols:
            raise DataError("a panel needs distinct symbols")
        self.symbols = list(symbols)
        self.column = {s: i for i, s in enumerate(self.symbols)}
        self.capacity = capacity
        self.timeframe = timeframe
        known = instruments or {}
        self.instruments = {s: known.get(s) or Instrument(s) for s in self.symbols}
        # Twice the capacity, so the newest `capacity` rows are always one contiguous slice.
        self._data = np.full((len(FIELDS), 2 * capacity, len(self.symbols)), np.nan)
        self._times = np.zeros(2 * capacity, dtype=np.int64)
        self._end = 0  # one past the newest row in the buffers
        self._count = 0
        self._last_close = np.full(len(self.symbols), np.nan)
        self._columns = pd.Index(self.symbols, name="symbol")
        self.token = next(_TOKENS)  # tells this panel from one that replaced it (the decide worker's copy)

    def __len__(self) -> int:
        return self._count

    @property
    def last_time_ns(self) -> int | None:
        """Return the close time of the newest row, or None when empty."""
        return int(self._times[self._end - 1]) if self._count else None

    def last_close(self, symbol: str) -> float:
        """Return the newest known close of `symbol` (NaN before its first bar)."""
        return float(self._last_close[self.column[symbol]])

    def last_closes(self) -> np.ndarray:
        """Return the newest row's closes, one per symbol (a copy; NaN before a symbol's first bar)."""
        return self._last_close.copy()

    def _next_row(self, close_ns: int) -> int:
        """Return the buffer row for the row closing at `close_ns`, moving the kept rows down when full."""
        last = self.last_time_ns
        if last is not None and close_ns <= last:
            raise DataError(f"panel row at {close_ns} is not after the newest row at {last}")
        if self._end == len(self._times):
            keep = self.capacity - 1
            self._data[:, :keep] = self._data[:, self._end - keep : self._end]
            self._times[:keep] = self._times[self._end - keep : self._end]
            self._end = keep
        return self._end

    def _commit_row(self, row: int, close_ns: int) -> None:
        self._times[row] = close_ns
        self._end += 1
        self._count = min(self._count + 1, self.capacity)

    def append(self, close_ns: int, bars: Mapping[str, Bar] | Sequence[Bar]) -> None:
        """Add the row closing at `close_ns` from the bars received for it (others carried forward)."""
        row = self._next_row(close_ns)
        values = self._data[:, row]
        values[0:4] = self._last_close
        values[4] = np.where(np.isnan(self._last_close), np.nan, 0.0)
        items = bars.values() if isinstance(bars, Mapping) else bars
        for bar in items:
            col = self.column.get(bar.symbol)
            if col is None:
                continue
            values[0, col] = bar.open
            values[1, col] = bar.high
            values[2, col] = bar.low
            values[3, col] = bar.close
            values[4, col] = bar.volume
            self._last_close[col] = bar.close
        self._commit_row(row, close_ns)

    def kept_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the close times and the `(field, row, symbol)` values of every kept row (copies)."""
        start = self._end - self._count
        return self._times[start : self._end].copy(), self._data[:, start : self._end].copy()

    def rows_after(self, time_ns: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the rows after the row closing at `time_ns`, as `kept_rows` does.

        None when `time_ns` is not a kept row, so that what came between is unknown (the caller
        then needs `kept_rows`).
        """
        start = self._end - self._count
        times = self._times[start : self._end]
        first = int(np.searchsorted(times, time_ns, side="right"))
        if first == 0 or times[first - 1] != time_ns:
            return None
        return times[first:].copy(), self._data[:, start + first : self._end].copy()

    def append_rows(self, times: np.ndarray, values: np.ndarray) -> None:
        """Append rows as `kept_rows` and `rows_after` return them (another panel's, already carried forward)."""
        for i, close_ns in enumerate(times.tolist()):
            row = self._next_row(close_ns)
            self._data[:, row] = values[:, i]
            self._last_close[:] = values[3, i]
            self._commit_row(row, close_ns)

    def append_frame(self, bars: Bars) -> None:
        """Append every row of a `Bars` panel (warm-up history), symbols matched by name."""
        fields = [bars.field(f).reindex(columns=self.symbols).to_numpy() for f in FIELDS]
        times = bars.index.as_unit("ns").asi8
        for i, close_ns in enumerate(times):
            rows = [
                Bar(
                    "",
                    s,
                    self.timeframe or "",
                    0,
                    float(fields[0][i, c]),
                    float(fields[1][i, c]),
                    float(fields[2][i, c]),
                    float(fields[3][i, c]),
                    float(fields[4][i, c]),
                    float("nan"),
                    0,
                )
                for c, s in enumerate(self.symbols)
                if not np.isnan(fields[3][i, c])
            ]
            self.append(int(close_ns), rows)

    def window(self, length: int | None = None) -> Bars:
        """Return the newest `length` rows (all kept rows by default) as a `Bars` panel."""
        n = self._count if length is None else min(length, self._count)
        if n == 0:
            raise DataError("the panel has no rows yet")
        start = self._end - n
        index = pd.DatetimeIndex(self._times[start : self._end].copy(), tz="UTC", name="time")
        frames = {
            name: pd.DataFrame(self._data[k, start : self._end].copy(), index=index, columns=self._columns, copy=False)
            for k, name in enumerate(FIELDS)
        }
        return Bars(**frames, instruments=self.instruments, timeframe=self.timeframe)
