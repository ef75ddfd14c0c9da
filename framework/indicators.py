"""Causal, vectorised indicators over panels (rows = bar close times, columns = instruments).

Every function here is pure and causal: the value at bar t uses bars up to t only. Results are
memoised per input frame (by identity, while that frame is alive) and parameters, within a
bounded memory budget, so that a sweep calling `signals()` for thousands of parameter combinations
computes each distinct moving average once. Frames are treated as immutable: do not modify a
frame in place after passing it here.

The rolling and exponentially weighted windows are `framework.kernels`' numba kernels, which
compute all instruments of a panel in one call with pandas' arithmetic (pandas itself loops over
the columns in Python, which dominated the live engine's CPU); the memo is rata's own because
neither pandas nor vectorbt caches across calls with different parameter sets.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd

from framework import kernels

__all__ = [
    "clear_cache",
    "crossed_above",
    "crossed_below",
    "ema",
    "pct_return",
    "rolling_std",
    "rsi",
    "sma",
]

_MAX_BYTES = 512 * 1024 * 1024
_cache: OrderedDict[tuple[int, Hashable], pd.DataFrame] = OrderedDict()
_sizes: dict[tuple[int, Hashable], int] = {}
_alive: dict[int, weakref.ref[pd.DataFrame]] = {}
_used = 0


def clear_cache() -> None:
    """Forget every memoised indicator."""
    global _used
    _cache.clear()
    _sizes.clear()
    _used = 0


def _forget(frame_id: int) -> None:
    global _used
    _alive.pop(frame_id, None)
    for key in [k for k in _cache if k[0] == frame_id]:
        _cache.pop(key)
        _used -= _sizes.pop(key)


def _memo(frame: pd.DataFrame, key: Hashable, compute: Callable[[], np.ndarray]) -> pd.DataFrame:
    """Return `compute()`'s (rows x columns) array as a frame shaped like `frame`, memoised."""
    global _used
    fid = id(frame)
    ref = _alive.get(fid)
    if ref is None or ref() is not frame:
        if ref is not None:
            _forget(fid)
        _alive[fid] = weakref.ref(frame)
        weakref.finalize(frame, _forget, fid)
    full_key = (fid, key)
    hit = _cache.get(full_key)
    if hit is not None:
        _cache.move_to_end(full_key)
        return hit
    values = compute()
    value = pd.DataFrame(values, index=frame.index, columns=frame.columns, copy=False)
    size = int(values.nbytes)
    if size <= _MAX_BYTES // 4:
        _cache[full_key] = value
        _sizes[full_key] = size
        _used += size
        while _used > _MAX_BYTES and _cache:
            old, _ = _cache.popitem(last=False)
            _used -= _sizes.pop(old)
    return value


def sma(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """Return the simple moving average over `window` bars (NaN until `window` bars exist)."""
    return _memo(x, ("sma", window), lambda: kernels.rolling_mean(_floats(x), window))


def rolling_std(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """Return the rolling population standard deviation over `window` bars."""
    return _memo(x, ("std", window), lambda: kernels.rolling_std(_floats(x), window))


def ema(x: pd.DataFrame, span: int) -> pd.DataFrame:
    """Return the exponential moving average with `span` (alpha = 2 / (span + 1)), seeded at the first bar.

    An EMA remembers all history: give strategies using it a warm-up of several spans so that the
    live engine's rolling window gives the same values (the look-ahead check flags it otherwise).
    """
    return _memo(x, ("ema", span), lambda: kernels.ewm_mean(_floats(x), _pandas_alpha((span - 1) / 2), span))


def rsi(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """Return Wilder's relative strength index (0..100) over `window` bars.

    Wilder's smoothing is exponential (alpha = 1 / window), so it too remembers all history. With
    neither gains nor losses in the window (flat prices) the RSI is 50, not a spurious 100.
    """

    def compute() -> np.ndarray:
        values = _floats(x)
        delta = np.empty_like(values)
        delta[:1] = np.nan
        np.subtract(values[1:], values[:-1], out=delta[1:])
        alpha = _pandas_alpha((1 - 1 / window) / (1 / window))
        gain = kernels.ewm_mean(np.where(delta < 0, 0.0, delta), alpha, window)
        loss = kernels.ewm_mean(-np.where(delta > 0, 0.0, delta), alpha, window)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = 100 - 100 / (1 + gain / loss)
        value[loss == 0] = 100.0
        value[(gain == 0) & (loss == 0)] = 50.0
        value[np.isnan(gain)] = np.nan
        return value

    return _memo(x, ("rsi", window), compute)


def pct_return(x: pd.DataFrame, periods: int) -> pd.DataFrame:
    """Return the trailing return over `periods` bars."""

    def compute() -> np.ndarray:
        values = _floats(x)
        before = np.full_like(values, np.nan)
        lag = min(abs(periods), len(values))
        if periods >= 0:
            before[lag:] = values[: len(values) - lag]
        else:
            before[: len(values) - lag] = values[lag:]
        with np.errstate(divide="ignore", invalid="ignore"):
            return values / before - 1

    return _memo(x, ("ret", periods), compute)


def crossed_above(a: pd.DataFrame, b: pd.DataFrame | float) -> pd.DataFrame:
    """Return where `a` is above `b` at bar t after being at or below it at bar t-1 (NaN: no cross)."""
    return _cross(a, b, np.greater, np.less_equal)


def crossed_below(a: pd.DataFrame, b: pd.DataFrame | float) -> pd.DataFrame:
    """Return where `a` is below `b` at bar t after being at or above it at bar t-1 (NaN: no cross)."""
    return _cross(a, b, np.less, np.greater_equal)


def _cross(a: pd.DataFrame, b: pd.DataFrame | float, now: np.ufunc, before: np.ufunc) -> pd.DataFrame:
    # numpy rather than chained pandas operators: this runs once per combination in a sweep.
    av = a.to_numpy(dtype="float64")
    bv = b.to_numpy(dtype="float64") if isinstance(b, pd.DataFrame) else np.full_like(av, float(b))
    out = now(av, bv)
    out[0] = False
    out[1:] &= before(av[:-1], bv[:-1])
    return pd.DataFrame(out, index=a.index, columns=a.columns, copy=False)


def _floats(x: pd.DataFrame) -> np.ndarray:
    # A view of a float64 panel's single block (column-major), not a copy.
    return x.to_numpy(dtype="float64")


def _pandas_alpha(com: float) -> float:
    # pandas turns span and alpha into a centre of mass and back; the same float gives its bits.
    return 1.0 / (1.0 + com)
