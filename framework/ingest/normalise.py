"""Validate market events before anything downstream sees them: drop bad ones, count them by reason.

A feed hands over `Tick` and `Bar` objects, or plain dict messages with the same field names (see
`event_from_mapping`), or many trades at once as a `TickBatch` (`check_batch`: the same checks,
vectorised where they do not depend on earlier trades). The normaliser never raises on what it is
given: a bad event is counted under one reason in `Normaliser.rejected`, logged (rate-limited)
with its raw form truncated, and dropped, so it can neither crash the pipeline nor reach the
database.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import reprlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from framework.clock import Clock
from framework.events import Bar, MarketEvent, Tick, TickBatch
from framework.ingest.messages import (
    DUPLICATE,
    FUTURE_TIMESTAMP,
    INVALID_VALUE,
    MISSING_FIELD,
    NON_FINITE,
    NON_POSITIVE,
    OUT_OF_ORDER,
    UNKNOWN_INSTRUMENT,
    WRONG_TYPE,
    InvalidEvent,
    event_from_mapping,
)
from framework.timeframes import TIMEFRAMES

__all__ = ["Normaliser"]

log = logging.getLogger(__name__)

_SECOND = 1_000_000_000
_RAW_LIMIT = 200

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxdict = 16
_repr.maxlist = 16
_repr.maxstring = 120
_repr.maxother = _RAW_LIMIT


def _raw(event: object) -> str:
    text = _repr.repr(event)
    return text if len(text) <= _RAW_LIMIT else text[: _RAW_LIMIT - 3] + "..."


class _LogWindow:
    __slots__ = ("logged", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.suppressed = 0


class _Recent:
    """One instrument's latest accepted trade time and the trade ids accepted recently.

    Ids live in two generations: `ids` (the current one, started when the latest trade time was
    `start_ns`) and `old`. When the latest time moves more than the tolerance past `start_ns`, or
    `ids` reaches the bound, `old` is dropped and `ids` becomes `old`. So an id is remembered at
    least until it falls more than the tolerance behind the latest trade (unless the bound is
    reached), after which a trade carrying it again is refused as out of order anyway. Dropping a
    whole generation at once costs nothing per trade, unlike evicting ids one by one.
    """

    __slots__ = ("ids", "last_ns", "old", "start_ns")

    def __init__(self) -> None:
        self.last_ns = 0
        self.start_ns = 0
        self.ids: set[str] = set()
        self.old: set[str] = set()

    def rotate(self) -> None:
        self.old = self.ids
        self.ids = set()
        self.start_ns = self.last_ns


_EARLY_NON_FINITE, _EARLY_NON_POSITIVE, _MID_SIDE, _LATE_NON_POSITIVE, _LATE_FUTURE = 1, 2, 4, 8, 16


class Normaliser:
    """Accept valid events for known instruments; reject, count and log everything else.

    Rejection reasons (keys of `rejected`): `missing_field`, `wrong_type`, `non_finite` (NaN or
    infinite), `non_positive` (price, size or time <= 0, negative volume), `invalid_value` (a side
    other than -1/0/1, an unknown timeframe, a bar whose low/high do not bracket its open/close),
    `unknown_instrument`, `future_timestamp` (more than `max_future_ns` ahead of `clock`),
    `duplicate` (a trade id already accepted for the instrument) and `out_of_order` (older than
    the instrument's latest accepted trade by more than `reorder_tolerance_ns`).

    Duplicates are detected within the reordering window: trade ids are remembered at least until
    they fall more than `reorder_tolerance_ns` behind the latest trade (up to about
    `max_recent_ids` per instrument), and anything older is refused as out of order anyway.
    Storage keys are idempotent too, so a duplicate that slips past a full window is still never
    stored twice.

    `check_batch` applies the same checks, in the same order of reasons, to a `TickBatch`.

    Each reason is logged at most `log_limit` times per `log_window_s` seconds of `monotonic`
    time; the number suppressed is logged when the window rolls over.
    """

    def __init__(
        self,
        instruments: Iterable[tuple[str, str]],
        clock: Clock,
        *,
        max_future_ns: int = 5 * _SECOND,
        reorder_tolerance_ns: int = 2 * _SECOND,
        max_recent_ids: int = 4096,
        log_limit: int = 5,
        log_window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._known: dict[str, set[str]] = {}
        self.add_instruments(instruments)
        self._clock = clock
        self._max_future_ns = max_future_ns
        self._tolerance_ns = reorder_tolerance_ns
        self._max_recent = max_recent_ids
        self._log_limit = log_limit
        self._log_window_s = log_window_s
        self._monotonic = monotonic
        self._log_windows: dict[str, _LogWindow] = {}
        self._recent: dict[str, dict[str, _Recent]] = {}
        self.received = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def add_instruments(self, instruments: Iterable[tuple[str, str]]) -> None:
        """Accept events of more (venue, symbol) instruments from now on."""
        for venue, symbol in instruments:
            self._known.setdefault(venue, set()).add(symbol)

    def check(self, event: object) -> MarketEvent | None:
        """Return the event (a dict message converted) when it is valid, else count it and return None."""
        self.received += 1
        try:
            if isinstance(event, Tick):
                accepted: MarketEvent = self._check_tick(event)
            elif isinstance(event, Bar):
                accepted = self._check_bar(event)
            elif isinstance(event, Mapping):
                converted = event_from_mapping(event)
                accepted = self._check_tick(converted) if isinstance(converted, Tick) else self._check_bar(converted)
            else:
                raise InvalidEvent(WRONG_TYPE)
        except InvalidEvent as exc:
            self._reject(exc.reason, event)
            return None
        self.accepted += 1
        return accepted

    def _check_instrument(self, venue: object, symbol: object) -> tuple[str, str]:
        if type(venue) is not str or type(symbol) is not str:
            raise InvalidEvent(WRONG_TYPE)
        if not venue or not symbol:
            raise InvalidEvent(MISSING_FIELD)
        if symbol not in self._known.get(venue, ()):
            raise InvalidEvent(UNKNOWN_INSTRUMENT)
        return venue, symbol

    def _check_time(self, time_ns: object) -> int:
        if type(time_ns) is not int:
            raise InvalidEvent(WRONG_TYPE)
        if time_ns <= 0:
            raise InvalidEvent(NON_POSITIVE)
        if time_ns > self._clock.now_ns() + self._max_future_ns:
            raise InvalidEvent(FUTURE_TIMESTAMP)
        return time_ns

    def _check_tick(self, tick: Tick) -> Tick:
        price, size, trade_id = tick.price, tick.size, tick.trade_id
        if type(price) is not float or type(size) is not float:
            price, size = _value(price), _value(size)
            tick = dataclasses.replace(tick, price=price, size=size)
        if not (math.isfinite(price) and math.isfinite(size)):
            raise InvalidEvent(NON_FINITE)
        if price <= 0.0 or size <= 0.0:
            raise InvalidEvent(NON_POSITIVE)
        if type(trade_id) is not str:
            raise InvalidEvent(WRONG_TYPE)
        if not trade_id:
            raise InvalidEvent(MISSING_FIELD)
        if type(tick.side) is not int or tick.side not in (1, 0, -1):
            raise InvalidEvent(INVALID_VALUE)
        if type(tick.recv_ns) is not int or type(tick.sent_ns) is not int:
            raise InvalidEvent(WRONG_TYPE)
        venue, symbol = self._check_instrument(tick.venue, tick.symbol)
        time_ns = self._check_time(tick.time_ns)
        by_symbol = self._recent.get(venue)
        if by_symbol is None:
            by_symbol = self._recent[venue] = {}
        recent = by_symbol.get(symbol)
        if recent is None:
            recent = by_symbol[symbol] = _Recent()
        if trade_id in recent.ids or trade_id in recent.old:
            raise InvalidEvent(DUPLICATE)
        if time_ns < recent.last_ns - self._tolerance_ns:
            raise InvalidEvent(OUT_OF_ORDER)
        recent.ids.add(trade_id)
        if time_ns > recent.last_ns:
            recent.last_ns = time_ns
            if time_ns - recent.start_ns > self._tolerance_ns:
                recent.rotate()
        if len(recent.ids) >= self._max_recent:
            recent.rotate()
        return tick

    def check_batch(self, batch: TickBatch) -> TickBatch | None:
        """Return the valid trades of `batch` (the batch itself when all are), or None when none is.

        Each refused trade is counted and logged like `check` does for a `Tick`, under the reason
        `check` would give it.
        """
        n = len(batch)
        if n == 0:
            return None
        self.received += n
        price, size, times = batch.price, batch.size, batch.time_ns
        finite = np.isfinite(price) & np.isfinite(size)
        flags = np.where(finite, 0, _EARLY_NON_FINITE)
        flags |= np.where(finite & ((price <= 0.0) | (size <= 0.0)), _EARLY_NON_POSITIVE, 0)
        flags |= np.where((batch.side < -1) | (batch.side > 1), _MID_SIDE, 0)
        flags |= np.where(times <= 0, _LATE_NON_POSITIVE, 0)
        flags |= np.where(times > self._clock.now_ns() + self._max_future_ns, _LATE_FUTURE, 0)
        venue = batch.venue
        if type(venue) is str:
            known = self._known.get(venue, set())
            by_symbol = self._recent.setdefault(venue, {})
        else:  # every trade is refused (wrong_type) before its instrument's state is needed
            known, by_symbol = set(), {}
        tolerance, bound = self._tolerance_ns, self._max_recent
        refused: list[tuple[int, str]] = []
        for i, (symbol, trade_id, time_ns, flag) in enumerate(
            zip(batch.symbols, batch.trade_ids, times.tolist(), flags.tolist(), strict=True)
        ):
            try:
                plain = not flag and type(trade_id) is str and trade_id and symbol in known
            except TypeError:  # an unhashable symbol
                plain = False
            if not plain:
                refused.append((i, _batch_reason(flag, venue, symbol, trade_id, known)))
                continue
            recent = by_symbol.get(symbol)
            if recent is None:
                recent = by_symbol[symbol] = _Recent()
            if trade_id in recent.ids or trade_id in recent.old:
                refused.append((i, DUPLICATE))
                continue
            if time_ns < recent.last_ns - tolerance:
                refused.append((i, OUT_OF_ORDER))
                continue
            recent.ids.add(trade_id)
            if time_ns > recent.last_ns:
                recent.last_ns = time_ns
                if time_ns - recent.start_ns > tolerance:
                    recent.rotate()
            if len(recent.ids) >= bound:
                recent.rotate()
        if not refused:
            self.accepted += n
            return batch
        for i, reason in refused:
            self._reject(reason, batch.tick(i))
        self.accepted += n - len(refused)
        if len(refused) == n:
            return None
        keep = np.ones(n, dtype=np.bool_)
        keep[[i for i, _ in refused]] = False
        return batch.take(keep)

    def _check_bar(self, bar: Bar) -> Bar:
        prices = (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap)
        if any(type(p) is not float for p in prices):
            bar = dataclasses.replace(
                bar,
                open=_value(bar.open),
                high=_value(bar.high),
                low=_value(bar.low),
                close=_value(bar.close),
                volume=_value(bar.volume),
                vwap=_value(bar.vwap),
            )
            prices = (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap)
        if not all(math.isfinite(p) for p in prices):
            raise InvalidEvent(NON_FINITE)
        if min(bar.open, bar.high, bar.low, bar.close, bar.vwap) <= 0.0 or bar.volume < 0.0:
            raise InvalidEvent(NON_POSITIVE)
        if type(bar.trades) is not int or type(bar.timeframe) is not str:
            raise InvalidEvent(WRONG_TYPE)
        if bar.trades < 0 or bar.timeframe not in TIMEFRAMES:
            raise InvalidEvent(INVALID_VALUE)
        if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
            raise InvalidEvent(INVALID_VALUE)
        self._check_instrument(bar.venue, bar.symbol)
        self._check_time(bar.open_ns)
        return bar

    def _reject(self, reason: str, event: object) -> None:
        self.rejected[reason] += 1
        now = self._monotonic()
        window = self._log_windows.get(reason)
        if window is None or now - window.start >= self._log_window_s:
            if window is not None and window.suppressed:
                log.warning("%d more %s rejections were not logged", window.suppressed, reason)
            window = self._log_windows[reason] = _LogWindow(now)
        if window.logged < self._log_limit:
            window.logged += 1
            log.warning("rejected market event (%s): %s", reason, _raw(event))
        else:
            window.suppressed += 1


def _batch_reason(flag: int, venue: object, symbol: object, trade_id: object, known: set[str]) -> str:
    """Return the reason `Normaliser.check` gives a trade with these values, in its order of checks."""
    if flag & _EARLY_NON_FINITE:
        return NON_FINITE
    if flag & _EARLY_NON_POSITIVE:
        return NON_POSITIVE
    if type(trade_id) is not str:
        return WRONG_TYPE
    if not trade_id:
        return MISSING_FIELD
    if flag & _MID_SIDE:
        return INVALID_VALUE
    if type(venue) is not str or type(symbol) is not str:
        return WRONG_TYPE
    if not venue or not symbol:
        return MISSING_FIELD
    if symbol not in known:
        return UNKNOWN_INSTRUMENT
    return NON_POSITIVE if flag & _LATE_NON_POSITIVE else FUTURE_TIMESTAMP


def _value(value: object) -> float:
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise InvalidEvent(WRONG_TYPE)
