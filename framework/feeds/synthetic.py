"""A seeded, reproducible synthetic trade feed: the dev-mode market and the ingestion test bench.

Prices follow a geometric Brownian motion with Poisson jumps in *trade time*: every trade of an
instrument moves its log price by one step, so the sequence of trades depends only on the seed,
never on the rate, the clock or how fast the consumer reads. The rate only decides when each trade
is emitted and which timestamp it carries.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Final

import numpy as np

from framework.clock import Clock, WallClock, sleep_until_or_set
from framework.events import MarketEvent, Tick, TickBatch
from framework.feeds.base import FeedHealth
from framework.instruments import Instrument

__all__ = ["MALFORMED_KINDS", "SyntheticFeed"]

MALFORMED_KINDS: Final = (
    "nan_price",
    "inf_price",
    "zero_price",
    "negative_price",
    "zero_size",
    "negative_size",
    "nan_size",
    "unknown_symbol",
    "future_time",
    "missing_trade_id",
    "duplicate",
)
"""The bad ticks `SyntheticFeed(malformed=...)` can inject (see the class docstring)."""

_Block = tuple[list[int], list[float], list[float], list[int], list[int], list[bool], list[int]]
"""A drawn block: instrument index, price, size, side, trade number, is-followed-by-bad, bad kind."""
_BLOCK: Final = 4096  # trades drawn per numpy batch; fixed, so the sequence never depends on timing
_CHUNK: Final = 1024  # most trades emitted before yielding to the event loop
_FUTURE_NS: Final = 86_400 * 1_000_000_000  # how far ahead a "future_time" tick is stamped


class SyntheticFeed:
    """Emit trades for `n_instruments` made-up instruments at `rate` trades a second in total.

    Ways to use it:

    - dev mode and demos: `SyntheticFeed()` paces 1,000 trades/s over 500 instruments on the wall
      clock, forever (until `close()`);
    - as fast as possible: `rate=None` (or 0) emits as fast as the consumer reads;
    - in simulated time: pass a `SimulatedClock`; the feed advances it to each batch's due time, so
      1,000 trades at `rate=500` end exactly 2 s of simulated time after the start.

    Pacing works in batches: the feed sleeps until `batch_interval` seconds' worth of trades (at
    least one) are due, then emits them all, so a trade leaves up to about that late
    (`recv_ns - time_ns`) and the event loop wakes a few hundred times a second, not once a trade.
    A consumer slower than `rate` gets every trade, late; nothing is dropped.

    Reproducibility: the same `seed` (and the same instrument and process settings) gives the same
    sequence of `(symbol, price, size, side, trade_id)` whatever the rate, clock or consumer speed.
    Only `time_ns` (the due time on the clock: the i-th trade, from 0, is due `(i + 1) / rate`
    seconds after the start; with no rate, the clock's time at emission) and `recv_ns` (the clock's
    time at emission) depend on timing.

    The market: instrument `SYN000`, `SYN001`, ... gets a starting price drawn log-uniformly from
    `price_range`, a tick size and quantity step (powers of ten: at least 10,000 ticks in the starting
    price, at least ten steps in a typical trade), a per-trade volatility drawn log-uniformly from
    `volatility` (a float gives every instrument the same), and an activity weight (some instruments
    trade much more often than others). Each trade moves the instrument's log price by
    `N(-sigma^2/2 - compensation, sigma^2)` plus, with Poisson intensity `jump_rate` per trade, jumps
    of standard deviation `jump_scale` (the drift terms keep the price a martingale). Prices are
    rounded to the tick and never fall below one tick; sizes are lognormal around `notional` of
    currency, rounded to the step and at least one step; the taker side leans with the move.

    Bad input for ingestion tests: `malformed` is the probability that a bad tick is *inserted*
    after each good one (the good sequence stays exactly the one without injection, so a test can
    compare what was stored with a clean feed). The kinds, from `MALFORMED_KINDS` or the subset in
    `malformed_kinds`, are all `Tick` objects a normaliser must reject: `nan_price`, `inf_price`,
    `zero_price`, `negative_price`, `zero_size`, `negative_size`, `nan_size`, `unknown_symbol` (a
    symbol not in `instruments`), `future_time` (stamped one day ahead), `missing_trade_id` (an
    empty trade id), and `duplicate` (an exact copy of a recent good trade, out of order). Bad
    ticks other than duplicates carry trade ids starting with `bad`, never a good trade's id.
    `malformed_counts` tells how many of each kind were emitted.
    """

    def __init__(
        self,
        n_instruments: int = 500,
        rate: float | None = 1000.0,
        seed: int = 0,
        *,
        clock: Clock | None = None,
        venue: str = "SIM",
        duration: float | None = None,
        limit: int | None = None,
        volatility: float | tuple[float, float] = (1e-4, 1e-3),
        jump_rate: float = 1e-4,
        jump_scale: float = 0.005,
        price_range: tuple[float, float] = (1.0, 2000.0),
        notional: float = 1000.0,
        malformed: float = 0.0,
        malformed_kinds: Sequence[str] | None = None,
        batch_interval: float = 0.002,
        name: str = "synthetic",
    ) -> None:
        if n_instruments < 1:
            raise ValueError("n_instruments must be at least 1")
        if rate is not None and not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be a finite number of trades per second >= 0, got {rate}")
        if not 0.0 <= malformed <= 1.0:
            raise ValueError(f"malformed is a probability in [0, 1], got {malformed}")
        kinds = tuple(malformed_kinds) if malformed_kinds is not None else MALFORMED_KINDS
        unknown = [k for k in kinds if k not in MALFORMED_KINDS]
        if unknown or not kinds:
            raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}, got {kinds}")
        low, high = (volatility, volatility) if isinstance(volatility, int | float) else volatility
        if not 0 < low <= high:
            raise ValueError(f"volatility must be positive (low <= high), got {volatility}")
        if not 0 < price_range[0] <= price_range[1]:
            raise ValueError(f"price_range must be positive (low <= high), got {price_range}")

        self.name = name
        self.venue = venue
        self._clock: Clock = clock if clock is not None else WallClock()
        self._ns_per_trade = Fraction(10**9) / Fraction(rate).limit_denominator(10**6) if rate else None
        self._max_trades = limit
        if duration is not None and self._ns_per_trade is not None:
            count = math.floor(Fraction(duration).limit_denominator(10**9) * 10**9 / self._ns_per_trade)
            self._max_trades = count if limit is None else min(limit, count)
        self._duration_ns = None if duration is None else round(duration * 1e9)
        self._batch = max(1, math.ceil((rate or 0) * batch_interval))
        self._jump_rate = jump_rate
        self._jump_scale = jump_scale
        self._malformed = malformed
        self._kinds = kinds

        setup, self._rng, self._bad_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        n = n_instruments
        width = max(3, len(str(n - 1)))
        self._symbols = [f"SYN{i:0{width}d}" for i in range(n)]
        self.start_prices = np.exp(setup.uniform(math.log(price_range[0]), math.log(price_range[1]), n))
        self.volatilities = np.exp(setup.uniform(math.log(low), math.log(high), n))
        weights = setup.lognormal(0.0, 1.0, n)
        self._cum_weights = np.cumsum(weights / weights.sum())
        self._cum_weights[-1] = 1.0
        # ticks and steps are 10**-d, held as the exact integers 10**d so k / 10**d is the decimal
        self._inv_tick = 10.0 ** np.clip(4 - np.floor(np.log10(self.start_prices)), 0, 12)
        median_size = notional / self.start_prices
        self._inv_step = 10.0 ** np.clip(1 - np.floor(np.log10(median_size)), 0, 8)
        self._log_size = np.log(median_size)
        self._instruments = [
            Instrument(s, tick_size=1 / float(t), qty_step=1 / float(q), venue=venue, asset_class="synthetic")
            for s, t, q in zip(self._symbols, self._inv_tick, self._inv_step, strict=True)
        ]
        compensation = jump_rate * (math.exp(jump_scale**2 / 2) - 1)
        self._drift = -(self.volatilities**2) / 2 - compensation
        self._log_price = np.log(self.start_prices)
        self._trade_ids = np.zeros(n, dtype=np.int64)

        self._block: _Block | None = None
        self._pos = 0
        self._emitted = 0
        self._start_ns: int | None = None
        self._recent: deque[Tick] = deque(maxlen=256)
        self._bad_serial = 0
        self.malformed_counts: dict[str, int] = dict.fromkeys(kinds, 0)

        self._connected = False
        self._closed = False
        self._close_event = asyncio.Event()
        self._messages = 0
        self._last_ns: int | None = None

    @property
    def instruments(self) -> list[Instrument]:
        """Return the instruments, with their tick sizes and quantity steps."""
        return list(self._instruments)

    @property
    def emitted(self) -> int:
        """Return how many good trades were emitted (injected bad ticks not included)."""
        return self._emitted

    async def connect(self) -> None:
        """Mark the feed connected; the schedule starts at the first `events()` read."""
        if self._closed:
            raise RuntimeError(f"{self.name}: feed is closed")
        self._connected = True

    async def close(self) -> None:
        """Stop the feed: `events()` ends at once, even in the middle of a long wait."""
        self._closed = True
        self._connected = False
        self._close_event.set()

    def health(self) -> FeedHealth:
        """Return connection state, the clock time of the last emission and the number emitted."""
        return FeedHealth(self.name, self._connected, self._last_ns, messages=self._messages)

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Yield trades on schedule until `close()`, `limit` or `duration`; one consumer at a time."""
        await self._begin()
        clock = self._clock
        venue, names = self.venue, self._symbols
        per = self._ns_per_trade
        inject = self._malformed > 0
        while (until := await self._until()) is not None:
            start = self._start_ns
            assert start is not None
            while self._emitted < until and not self._closed:
                if self._block is None or self._pos >= _BLOCK:
                    self._block = self._draw_block()
                    self._pos = 0
                symbols, prices, sizes, sides, ids, bad, bad_kind = self._block
                for j in range(self._pos, min(_BLOCK, self._pos + until - self._emitted)):
                    now = clock.now_ns()
                    number = self._emitted + 1
                    time_ns = now if per is None else start + number * per.numerator // per.denominator
                    trade_id = f"{ids[j]:012d}"
                    tick = Tick(venue, names[symbols[j]], time_ns, trade_id, prices[j], sizes[j], sides[j], now)
                    self._emitted = number
                    self._pos = j + 1
                    self._messages += 1
                    self._last_ns = now
                    yield tick
                    if inject:
                        self._recent.append(tick)
                        if bad[j] and not self._closed:
                            self._messages += 1
                            yield self._bad_tick(tick, self._kinds[bad_kind[j]], clock.now_ns())
                    if self._closed:
                        break
            await asyncio.sleep(0)  # let other tasks run between chunks, even when behind schedule
        self._connected = False

    async def batches(self) -> AsyncIterator[TickBatch | MarketEvent]:
        """Yield the trades `events()` would, in the same order, as one `TickBatch` per pacing step.

        A batch holds the trades due when the feed wakes (at most 1,024); the injected bad ticks sit
        in the batch right after the good tick they follow. Every trade of a batch carries the
        clock's time at its emission as `recv_ns`; `time_ns` is each trade's own due time as in
        `events()`.
        """
        await self._begin()
        while (until := await self._until()) is not None:
            yield self._take(until)
            await asyncio.sleep(0)  # let other tasks run between batches, even when behind schedule
        self._connected = False

    async def _begin(self) -> None:
        if not self._connected:
            await self.connect()
        if self._start_ns is None:
            self._start_ns = self._clock.now_ns()

    async def _until(self) -> int | None:
        """Wait until trades are due; return how many good trades should have been emitted by now (None: end)."""
        clock = self._clock
        start = self._start_ns
        assert start is not None
        per = self._ns_per_trade
        while not self._closed:
            if self._max_trades is not None and self._emitted >= self._max_trades:
                return None
            if per is None:
                if self._duration_ns is not None and clock.now_ns() - start >= self._duration_ns:
                    return None
                due = self._emitted + _CHUNK
            else:
                due = max(0, (clock.now_ns() - start) * per.denominator // per.numerator)
                if due <= self._emitted:
                    wake_at = self._emitted + self._batch
                    if self._max_trades is not None:
                        wake_at = min(wake_at, self._max_trades)
                    wake = start - (-wake_at * per.numerator // per.denominator)  # rounded up: due by then
                    await sleep_until_or_set(self._clock, wake, self._close_event)
                    continue
            until = min(due, self._emitted + _CHUNK)
            return until if self._max_trades is None else min(until, self._max_trades)
        return None

    def _take(self, until: int) -> TickBatch:
        """Emit the good trades up to number `until` (and the bad ones injected after them) as one batch."""
        now = self._clock.now_ns()
        if self._malformed > 0:
            return self._take_ticks(until, now)
        per = self._ns_per_trade
        start = self._start_ns
        assert start is not None
        names = self._symbols
        symbols: list[str] = []
        trade_ids: list[str] = []
        prices: list[float] = []
        sizes: list[float] = []
        sides: list[int] = []
        first = self._emitted + 1
        while self._emitted < until:
            if self._block is None or self._pos >= _BLOCK:
                self._block = self._draw_block()
                self._pos = 0
            block_symbols, block_prices, block_sizes, block_sides, block_ids, _, _ = self._block
            lo = self._pos
            hi = min(_BLOCK, lo + until - self._emitted)
            symbols += [names[i] for i in block_symbols[lo:hi]]
            trade_ids += [f"{i:012d}" for i in block_ids[lo:hi]]
            prices += block_prices[lo:hi]
            sizes += block_sizes[lo:hi]
            sides += block_sides[lo:hi]
            self._pos = hi
            self._emitted += hi - lo
        count = until - first + 1
        if per is None:
            times = np.full(count, now, dtype=np.int64)
        elif until * per.numerator < 2**62:
            times = start + np.arange(first, until + 1, dtype=np.int64) * per.numerator // per.denominator
        else:
            times = np.array([start + n * per.numerator // per.denominator for n in range(first, until + 1)])
        self._messages += count
        self._last_ns = now
        received = np.full(count, now, dtype=np.int64)
        return TickBatch(self.venue, symbols, trade_ids, times, prices, sizes, sides, received, np.zeros(count))

    def _take_ticks(self, until: int, now: int) -> TickBatch:
        """`_take` with bad ticks injected: the trades one by one, as `events()` makes them."""
        per = self._ns_per_trade
        start = self._start_ns
        assert start is not None
        venue, names = self.venue, self._symbols
        out: list[Tick] = []
        while self._emitted < until:
            if self._block is None or self._pos >= _BLOCK:
                self._block = self._draw_block()
                self._pos = 0
            symbols, prices, sizes, sides, ids, bad, bad_kind = self._block
            for j in range(self._pos, min(_BLOCK, self._pos + until - self._emitted)):
                number = self._emitted + 1
                time_ns = now if per is None else start + number * per.numerator // per.denominator
                tick = Tick(venue, names[symbols[j]], time_ns, f"{ids[j]:012d}", prices[j], sizes[j], sides[j], now)
                self._emitted = number
                self._pos = j + 1
                out.append(tick)
                self._recent.append(tick)
                if bad[j]:
                    out.append(self._bad_tick(tick, self._kinds[bad_kind[j]], now))
        self._messages += len(out)
        self._last_ns = now
        return TickBatch.from_ticks(out)

    def _draw_block(self) -> _Block:
        """Draw the next `_BLOCK` trades in one go (vectorised: no per-trade RNG calls)."""
        rng = self._rng
        n = len(self._symbols)
        idx = np.minimum(np.searchsorted(self._cum_weights, rng.random(_BLOCK), side="right"), n - 1)
        shocks = rng.standard_normal(_BLOCK)
        jump_counts = rng.poisson(self._jump_rate, _BLOCK)
        jumps = rng.standard_normal(_BLOCK) * self._jump_scale * np.sqrt(jump_counts)
        size_noise = rng.standard_normal(_BLOCK)
        side_draw = rng.random(_BLOCK)

        returns = self._drift[idx] + self.volatilities[idx] * shocks + jumps
        # per-instrument running sums of the returns, in trade order, via a stable sort by instrument
        order = np.argsort(idx, kind="stable")
        grouped = idx[order]
        counts = np.bincount(idx, minlength=n)
        firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        running = np.cumsum(returns[order])
        before_group = np.where(firsts > 0, running[np.maximum(firsts - 1, 0)], 0.0)
        within = running - before_group[grouped]
        rank = np.arange(_BLOCK) - firsts[grouped]
        log_price = np.empty(_BLOCK)
        log_price[order] = self._log_price[grouped] + within
        trade_no = np.empty(_BLOCK, dtype=np.int64)
        trade_no[order] = self._trade_ids[grouped] + rank + 1
        active = counts > 0
        self._log_price[active] += running[firsts[active] + counts[active] - 1] - before_group[active]
        self._trade_ids += counts

        inv_tick = self._inv_tick[idx]
        prices = np.maximum(np.rint(np.exp(log_price) * inv_tick), 1.0) / inv_tick
        inv_step = self._inv_step[idx]
        raw_size = np.exp(self._log_size[idx] + size_noise)
        sizes = np.maximum(np.rint(raw_size * inv_step), 1.0) / inv_step
        sides = np.where(side_draw < 0.5 + 0.2 * np.sign(returns), 1, -1)

        bad = self._bad_rng.random(_BLOCK) < self._malformed
        bad_kind = self._bad_rng.integers(0, len(self._kinds), _BLOCK)
        return (
            idx.tolist(),
            prices.tolist(),
            sizes.tolist(),
            sides.tolist(),
            trade_no.tolist(),
            bad.tolist(),
            bad_kind.tolist(),
        )

    def _bad_tick(self, good: Tick, kind: str, now: int) -> Tick:
        """Return a bad tick of `kind` modelled on the good tick just emitted."""
        self.malformed_counts[kind] += 1
        if kind == "duplicate":
            back = int(self._bad_rng.integers(1, len(self._recent) + 1))
            return replace(self._recent[-back], recv_ns=now)
        self._bad_serial += 1
        bad = replace(good, trade_id=f"bad{self._bad_serial:012d}", recv_ns=now)
        if kind in ("nan_price", "inf_price", "zero_price", "negative_price"):
            price = {"nan_price": math.nan, "inf_price": math.inf, "zero_price": 0.0}.get(kind, -good.price)
            return replace(bad, price=price)
        if kind in ("zero_size", "negative_size", "nan_size"):
            return replace(bad, size={"zero_size": 0.0, "nan_size": math.nan}.get(kind, -good.size))
        if kind == "unknown_symbol":
            return replace(bad, symbol=f"UNKNOWN{self._bad_serial % 1000:03d}")
        if kind == "future_time":
            return replace(bad, time_ns=good.time_ns + _FUTURE_NS)
        return replace(bad, trade_id="")
