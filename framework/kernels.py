"""Whole-panel numba kernels behind `framework.indicators`: rolling mean, rolling std, EWM mean.

Each kernel takes a 2-D float64 panel (rows = bar close times, columns = instruments) and computes
every column in one compiled call, with pandas' arithmetic and NaN rules, so that the values are
those of `df.rolling(...)` and `df.ewm(...)` (bit for bit on ordinary data; the tests compare).

They are written by hand because none of the ready-made routes fits the live engine's hot path:

- pandas runs rolling and exponential windows column by column (`_apply_columnwise`): 500 Python
  calls per indicator for 500 instruments, most of the CPU of a live close;
- pandas' numba `method="table"` engine compiles for about 5 s in every process and has no std;
- vectorbt's `rolling_mean_nb` keeps an uncompensated running sum whose rounding error grows with
  the length of the series, so a full backtest and the live engine's short rolling window would
  drift apart more than they do with pandas' compensated sums.

The kernels compile lazily on first use and are cached on disk (`cache=True`: `__pycache__` next
to this module, or numba's user-wide cache directory when that is read-only). The wrappers always
hand them the same argument types (a read-only C-contiguous array, instruments x time, and int64 or
float64 scalars), so each kernel compiles exactly once.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["ewm_mean", "rolling_mean", "rolling_std", "warm_up"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# pandas' roll_var sums a window afresh when an update leaves fewer than 3 significant digits.
_INV_COND_TOL = float(np.finfo(np.float64).eps) * 1e3


def rolling_mean(values: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Return `DataFrame.rolling(window, min_periods).mean()` of a (time x instruments) array.

    NaN and infinite inputs are skipped and counted out; a value is NaN while fewer than
    `min_periods` (default `window`) finite values are in the window. The running sum is
    compensated (Kahan) on both add and remove, as in pandas' `roll_mean`.
    """
    window, minp = _window_args(window, min_periods)
    return _rolling_mean_nb(_by_instrument(values), window, minp).T


def rolling_std(values: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Return `DataFrame.rolling(window, min_periods).std(ddof=0)` of a (time x instruments) array.

    Welford's add/remove update with compensation, as in pandas' `roll_var`, which also sums the
    window afresh when an update cancels all but three significant digits of the sum of squares: a
    window of equal values then has a standard deviation of exactly 0. A variance that rounding
    left negative gives 0 (pandas' `zsqrt`), never NaN.
    """
    window, minp = _window_args(window, min_periods)
    return _rolling_std_nb(_by_instrument(values), window, max(minp, 1)).T


def ewm_mean(values: np.ndarray, alpha: float, min_periods: int) -> np.ndarray:
    """Return `DataFrame.ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean()` of an array.

    pandas' NaN rules with `ignore_na=False`: a column's average starts at its first finite value
    (instruments that begin trading later), a gap keeps the previous average and decays its weight
    by `1 - alpha` per missing bar, and a value is NaN until `min_periods` finite values were seen.
    pandas turns `span`, `com` and `alpha` into a centre of mass and back (`1 / (1 + com)`): pass
    that float to get pandas' bits. With alpha 0.5 (centre of mass 1) pandas weighs the first
    value after a gap `1 - old weight` instead of alpha, and so does this kernel.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return _ewm_mean_nb(_by_instrument(values), float(alpha), max(int(min_periods), 1), alpha == 0.5).T


def warm_up() -> None:
    """Compile (or load from the cache) every kernel now, on a tiny panel.

    A long-lived process that decides on a clock (the live engine's decide worker) calls this at
    start, so that its first close does not pay numba's start-up (about 0.1 s with the cache on
    disk, 1 s without).
    """
    tiny = np.arange(6.0).reshape(3, 2)
    rolling_mean(tiny, 2)
    rolling_std(tiny, 2)
    ewm_mean(tiny, 0.5, 1)


def _window_args(window: int, min_periods: int | None) -> tuple[int, int]:
    if int(window) < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    minp = int(window) if min_periods is None else int(min_periods)
    if not 0 <= minp <= int(window):
        raise ValueError(f"min_periods must be in [0, window], got {min_periods}")
    return int(window), minp


def _by_instrument(values: np.ndarray) -> np.ndarray:
    """Return `values` as a read-only C-contiguous (instruments x time) float64 array.

    A pandas float64 panel is stored column-major, so this is a view of it, not a copy.
    """
    out = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
    if out.flags.writeable:
        out = out.view()
        out.flags.writeable = False
    return out


@_jit
def _rolling_mean_nb(values: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    m, n = values.shape
    out = np.empty((m, n))
    for j in range(m):
        row = values[j]
        nobs = 0
        neg = 0
        total = 0.0
        comp_add = 0.0
        comp_remove = 0.0
        same = 0
        prev = np.nan
        for i in range(n):
            if window == 1:  # pandas restarts when the new window shares no bar with the last one
                nobs = 0
                neg = 0
                total = 0.0
                comp_add = 0.0
                comp_remove = 0.0
                same = 0
                prev = np.nan
            elif i >= window:
                val = row[i - window]
                if math.isfinite(val):
                    nobs -= 1
                    y = -val - comp_remove
                    t = total + y
                    comp_remove = t - total - y
                    total = t
                    if math.copysign(1.0, val) < 0:
                        neg -= 1
            val = row[i]
            if math.isfinite(val):
                nobs += 1
                y = val - comp_add
                t = total + y
                comp_add = t - total - y
                total = t
                if math.copysign(1.0, val) < 0:
                    neg += 1
                if val == prev:
                    same += 1
                else:
                    same = 1
                prev = val
            if nobs >= min_periods and nobs > 0:
                result = total / nobs
                if same >= nobs:
                    result = prev
                elif (neg == 0 and result < 0) or (neg == nobs and result > 0):
                    result = 0.0  # rounding gave the mean the wrong sign
                out[j, i] = result
            else:
                out[j, i] = np.nan
    return out


@_jit
def _var_add(
    val: float, nobs: float, mean: float, ssqdm: float, comp: float
) -> tuple[float, float, float, float, bool]:
    prev_m2 = ssqdm
    nobs += 1.0
    prev_mean = mean - comp
    y = val - comp
    t = y - mean
    comp = t + mean - y
    mean = mean + t / nobs
    ssqdm = ssqdm + (val - prev_mean) * (val - mean)
    return nobs, mean, ssqdm, comp, prev_m2 * _INV_COND_TOL > ssqdm


@_jit
def _rolling_std_nb(values: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    m, n = values.shape
    out = np.empty((m, n))
    for j in range(m):
        row = values[j]
        nobs = 0.0
        mean = 0.0
        ssqdm = 0.0
        comp_add = 0.0
        comp_remove = 0.0
        unstable = False
        for i in range(n):
            start = max(0, i + 1 - window)
            recompute = i == 0 or window == 1  # the new window shares no bar with the last one
            if not recompute:
                if i >= window:
                    val = row[i - window]
                    if math.isfinite(val):
                        prev_m2 = ssqdm
                        nobs -= 1.0
                        if nobs:
                            prev_mean = mean - comp_remove
                            y = val - comp_remove
                            t = y - mean
                            comp_remove = t + mean - y
                            mean = mean - t / nobs
                            ssqdm = ssqdm - (val - prev_mean) * (val - mean)
                            if prev_m2 * _INV_COND_TOL > ssqdm:
                                unstable = True
                        else:
                            mean = 0.0
                            ssqdm = 0.0
                            unstable = False
                val = row[i]
                if math.isfinite(val):
                    nobs, mean, ssqdm, comp_add, lost = _var_add(val, nobs, mean, ssqdm, comp_add)
                    unstable = unstable or lost
            if recompute or unstable:  # catastrophic cancellation: sum the window afresh
                nobs = 0.0
                mean = 0.0
                ssqdm = 0.0
                comp_add = 0.0
                comp_remove = 0.0
                for k in range(start, i + 1):
                    val = row[k]
                    if math.isfinite(val):
                        nobs, mean, ssqdm, comp_add, lost = _var_add(val, nobs, mean, ssqdm, comp_add)
                unstable = False
            if nobs >= min_periods and nobs > 0:
                var = ssqdm / nobs
                out[j, i] = 0.0 if var < 0 else math.sqrt(var)
            else:
                out[j, i] = np.nan
    return out


@_jit
def _ewm_mean_nb(values: np.ndarray, alpha: float, min_periods: int, com_is_one: bool) -> np.ndarray:
    m, n = values.shape
    out = np.empty((m, n))
    decay = 1.0 - alpha
    for j in range(m):
        if n == 0:
            break
        row = values[j]
        weighted = row[0] if math.isfinite(row[0]) else np.nan
        nobs = 1 if math.isfinite(row[0]) else 0
        out[j, 0] = weighted if nobs >= min_periods else np.nan
        old_wt = 1.0
        for i in range(1, n):
            cur = row[i]
            observed = math.isfinite(cur)
            if observed:
                nobs += 1
            if weighted == weighted:
                old_wt *= decay
                if observed:
                    if weighted != cur:
                        new_wt = 1.0 - old_wt if com_is_one else alpha
                        weighted = old_wt * weighted + new_wt * cur
                        weighted /= old_wt + new_wt
                    old_wt = 1.0
            elif observed:
                weighted = cur
            out[j, i] = weighted if nobs >= min_periods else np.nan
    return out
