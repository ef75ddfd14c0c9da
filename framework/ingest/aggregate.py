"""Aggregate trades into OHLCV bars of several timeframes, emitted when each period closes.

Bars are aligned to the epoch (a bar of length L opens at t - t % L) and closed by the event
clock: a bar is emitted when a later trade of the same instrument shows its period is over, or
when `flush` is told that time has passed it (an instrument that went quiet).

Only the shortest timeframe is updated per trade; each closed bar is folded into the next longer
timeframe, and so on up. Per-trade work stays a handful of attribute updates whatever the number
of timeframes, and every longer bar is exactly the aggregate of its shorter bars.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Final

from framework.errors import ParameterError
from framework.events import Bar, Tick, TickBatch
from framework.timeframes import timeframe_ns

__all__ = ["DEFAULT_TIMEFRAMES", "BarAggregator"]

DEFAULT_TIMEFRAMES: Final = ("1s", "1m", "5m", "15m", "1h", "1d")


class _Building:
    """The open bar of one timeframe of one instrument (empty when `trades` is 0)."""

    __slots__ = ("close", "end_ns", "high", "length", "low", "open", "open_ns", "pv", "timeframe", "trades", "volume")

    def __init__(self, timeframe: str, length: int) -> None:
        self.timeframe = timeframe
        self.length = length
        self.open_ns = 0
        self.end_ns = 0
        self.open = self.high = self.low = self.close = 0.0
        self.volume = 0.0
        self.pv = 0.0
        self.trades = 0

    def fold_into(self, upper: _Building) -> None:
        """Add this (closed) bar to the longer bar `upper`, opening it if it is empty."""
        if upper.trades == 0:
            upper.open_ns = self.open_ns - self.open_ns % upper.length
            upper.end_ns = upper.open_ns + upper.length
            upper.open, upper.high, upper.low = self.open, self.high, self.low
            upper.volume = upper.pv = 0.0
        else:
            if self.high > upper.high:
                upper.high = self.high
            if self.low < upper.low:
                upper.low = self.low
        upper.close = self.close
        upper.volume += self.volume
        upper.pv += self.pv
        upper.trades += self.trades


class _Instrument:
    __slots__ = ("base", "floor_ns", "levels", "symbol", "venue")

    def __init__(self, venue: str, symbol: str, timeframes: list[tuple[str, int]]) -> None:
        self.venue = venue
        self.symbol = symbol
        self.levels = [_Building(tf, length) for tf, length in timeframes]
        self.base = self.levels[0]
        self.floor_ns = 0


class BarAggregator:
    """Turn each instrument's trades into bars of `timeframes`, per instrument, in event time.

    `on_tick` returns the bars the trade closed; `flush(now_ns)` returns the bars whose period
    ended by `now_ns` (call it from a timer so quiet instruments still get their bars);
    `flush_all` closes every open bar (end of a replay). A trade older than the bars already
    emitted for its instrument is not merged into anything: it is counted in `late_ticks`.

    Each timeframe must be a whole multiple of the next shorter one (1s, 1m, 5m, 15m, 1h, 1d are).
    """

    def __init__(self, timeframes: Iterable[str] = DEFAULT_TIMEFRAMES) -> None:
        lengths = sorted({(timeframe_ns(tf), tf) for tf in timeframes})
        if not lengths:
            raise ParameterError("BarAggregator needs at least one timeframe")
        for (short, short_tf), (long, long_tf) in pairwise(lengths):
            if long % short:
                raise ParameterError(f"timeframe {long_tf} is not a whole multiple of {short_tf}")
        self.timeframes = tuple(tf for _, tf in lengths)
        self._lengths = [(tf, length) for length, tf in lengths]
        self._instruments: dict[tuple[str, str], _Instrument] = {}
        self._by_venue: dict[str, dict[str, _Instrument]] = {}
        self.late_ticks = 0
        self.opened: list[str] | None = None
        """When a list (not None), the symbols whose shortest bar just opened are appended (the pipeline drains it)."""
        self.bars_emitted = 0

    def on_tick(self, tick: Tick) -> list[Bar]:
        """Add a trade; return the bars it closed (shortest timeframe first)."""
        states = self._by_venue.get(tick.venue)
        state = states.get(tick.symbol) if states is not None else None
        if state is None:
            state = self._state(tick.venue, tick.symbol)
        closed = self._add(state, tick.time_ns, tick.price, tick.size)
        return closed if closed is not None else []

    def on_batch(self, batch: TickBatch) -> list[Bar]:
        """Add a batch of (valid) trades in order; return the bars they closed, in the order closed."""
        venue = batch.venue
        states = self._by_venue.get(venue)
        if states is None:
            states = self._by_venue[venue] = {}
        closed: list[Bar] = []
        add = self._add
        for symbol, t, price, size in zip(
            batch.symbols, batch.time_ns.tolist(), batch.price.tolist(), batch.size.tolist(), strict=True
        ):
            state = states.get(symbol)
            if state is None:
                state = self._state(venue, symbol)
            bar = state.base
            if bar.trades and t < bar.end_ns and t >= state.floor_ns:  # the common case, inlined
                if price > bar.high:
                    bar.high = price
                elif price < bar.low:
                    bar.low = price
                bar.close = price
                bar.volume += size
                bar.pv += price * size
                bar.trades += 1
                continue
            more = add(state, t, price, size)
            if more:
                closed += more
        return closed

    def _state(self, venue: str, symbol: str) -> _Instrument:
        state = self._instruments[(venue, symbol)] = _Instrument(venue, symbol, self._lengths)
        self._by_venue.setdefault(venue, {})[symbol] = state
        return state

    def _add(self, state: _Instrument, t: int, price: float, size: float) -> list[Bar] | None:
        """Add one trade to an instrument; return the bars it closed (None for none)."""
        if t < state.floor_ns:
            self.late_ticks += 1
            return None
        bar = state.base
        closed = self._close_through(state, t) if bar.trades == 0 or bar.end_ns <= t else None
        if bar.trades == 0:
            bar.open_ns = t - t % bar.length
            bar.end_ns = bar.open_ns + bar.length
            bar.open = bar.high = bar.low = bar.close = price
            bar.volume = size
            bar.pv = price * size
            bar.trades = 1
            state.floor_ns = bar.open_ns
            if self.opened is not None:
                self.opened.append(state.symbol)
        else:
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += size
            bar.pv += price * size
            bar.trades += 1
        return closed

    def flush(self, now_ns: int) -> list[Bar]:
        """Close and return every bar whose period ended by `now_ns` (event time)."""
        closed: list[Bar] = []
        for state in self._instruments.values():
            for level in state.levels:
                if level.trades:
                    if level.end_ns <= now_ns:
                        closed.extend(self._close_through(state, now_ns))
                    break
        return closed

    def flush_all(self) -> list[Bar]:
        """Close and return every open bar, complete or not (the data has ended)."""
        closed: list[Bar] = []
        for state in self._instruments.values():
            closed.extend(self._close_through(state, None))
        return closed

    def open_bars(self) -> list[Bar]:
        """Return the bars still open, as they stand now (nothing is closed)."""
        return [self._bar(s, level) for s in self._instruments.values() for level in s.levels if level.trades]

    def forming(self, symbol: str, timeframe: str) -> tuple[int, int, float] | None:
        """Return `(open_ns, end_ns, open)` of `symbol`'s bar of `timeframe` in progress (None before its first trade).

        The open is final from the bar's first trade on: the paper venue fills market orders at it
        as soon as it is known (`PaperBroker.opens`), rather than when the whole bar has closed.
        """
        for states in self._by_venue.values():
            state = states.get(symbol)
            if state is None:
                continue
            levels = state.levels
            for i, level in enumerate(levels):
                if level.timeframe != timeframe:
                    continue
                if level.trades:
                    return level.open_ns, level.end_ns, level.open
                for lower in reversed(levels[:i]):  # not folded up yet: its oldest part is the highest non-empty
                    if lower.trades:
                        start = lower.open_ns - lower.open_ns % level.length
                        return start, start + level.length, lower.open
                return None
        return None

    def _close_through(self, state: _Instrument, t: int | None) -> list[Bar]:
        closed: list[Bar] = []
        levels = state.levels
        last = len(levels) - 1
        for i, level in enumerate(levels):
            if level.trades == 0:
                continue
            if t is not None and level.end_ns > t:
                break
            closed.append(self._bar(state, level))
            if i < last:
                level.fold_into(levels[i + 1])
            level.trades = 0
            state.floor_ns = max(state.floor_ns, level.end_ns)
        self.bars_emitted += len(closed)
        return closed

    @staticmethod
    def _bar(state: _Instrument, level: _Building) -> Bar:
        return Bar(
            venue=state.venue,
            symbol=state.symbol,
            timeframe=level.timeframe,
            open_ns=level.open_ns,
            open=level.open,
            high=level.high,
            low=level.low,
            close=level.close,
            volume=level.volume,
            vwap=level.pv / level.volume if level.volume else level.close,
            trades=level.trades,
        )
