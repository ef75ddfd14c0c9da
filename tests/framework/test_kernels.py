from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import kernels
from framework.indicators import clear_cache, ema, pct_return, rolling_std, rsi, sma
from tests.conftest import make_bars

ROWS = 120
WINDOWS = [1, 2, 3, 7, 20, ROWS - 1, ROWS, ROWS + 5]


def _panel(seed: int = 7, rows: int = ROWS, cols: int = 12) -> pd.DataFrame:
    """Random-walk prices with the awkward cases of a live panel.

    Instruments that start trading later (leading NaN), isolated and multi-bar gaps, an infinite
    print, flat stretches (equal values), a series far from zero and one that crosses zero.
    """
    rng = np.random.default_rng(seed)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (rows, cols)), axis=0))
    for col in range(cols):
        values[: rng.integers(0, rows // 3), col] = np.nan
        values[rng.integers(0, rows, 4), col] = np.nan
    values[:70, 0] = np.nan
    values[30:45, 1] = np.nan
    values[10:40, 2] = 7.25
    values[50:53, 3] = 3.0
    values[60, 4] = np.inf
    values[61, 5] = -np.inf
    values[:, 6] = 1e9 + rng.normal(0, 1e-3, rows)
    values[:, 7] = np.cumsum(rng.normal(0, 1, rows))
    values[:, 8] = np.nan
    return pd.DataFrame(values)


def _assert_close(actual: np.ndarray, expected: pd.DataFrame, rtol: float) -> None:
    want = expected.to_numpy()
    assert actual.shape == want.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(want))
    np.testing.assert_allclose(actual, want, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("window", WINDOWS)
def test_rolling_mean_matches_pandas_with_nans_flat_runs_and_short_panels(window: int) -> None:
    frame = _panel()
    expected = frame.rolling(window, min_periods=window).mean()
    _assert_close(kernels.rolling_mean(frame.to_numpy(), window), expected, rtol=1e-12)


@pytest.mark.parametrize("window", WINDOWS)
def test_rolling_std_matches_pandas_population_std(window: int) -> None:
    frame = _panel()
    expected = frame.rolling(window, min_periods=window).std(ddof=0)
    _assert_close(kernels.rolling_std(frame.to_numpy(), window), expected, rtol=1e-9)


@pytest.mark.parametrize(("window", "min_periods"), [(5, 1), (5, 3), (10, 0)])
def test_rolling_kernels_honour_min_periods(window: int, min_periods: int) -> None:
    frame = _panel()
    rolling = frame.rolling(window, min_periods=min_periods)
    _assert_close(kernels.rolling_mean(frame.to_numpy(), window, min_periods), rolling.mean(), rtol=1e-12)
    _assert_close(kernels.rolling_std(frame.to_numpy(), window, min_periods), rolling.std(ddof=0), rtol=1e-9)


def test_rolling_std_of_equal_values_is_exactly_zero_and_never_nan() -> None:
    values = np.array([[1.1], [1.1], [1.1], [1.1], [2.0], [0.3], [0.3], [0.3], [0.3], [0.3]])
    std = kernels.rolling_std(values, 3)[:, 0]
    assert std[[2, 3, 8, 9]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert not np.isnan(std[2:]).any()
    assert not (std < 0).any()
    mean = kernels.rolling_mean(values, 3)[:, 0]
    assert mean[[3, 9]].tolist() == [1.1, 0.3]


def test_rolling_std_stays_accurate_after_a_huge_value_leaves_the_window() -> None:
    rng = np.random.default_rng(3)
    series = np.concatenate([[1e12], rng.normal(0, 0.01, 400)])
    std = kernels.rolling_std(series[:, None], 10)[:, 0]
    exact = np.array([series[i - 9 : i + 1].std() for i in range(9, len(series))])
    np.testing.assert_allclose(std[9 + 10 :], exact[10:], rtol=1e-9)


@pytest.mark.parametrize("span", [1, 2, 3, 10, 50, ROWS + 5])
def test_ewm_mean_matches_pandas_span_with_late_starts_and_gaps(span: int) -> None:
    frame = _panel()
    expected = frame.ewm(span=span, adjust=False, min_periods=span).mean()
    alpha = 1 / (1 + (span - 1) / 2)
    _assert_close(kernels.ewm_mean(frame.to_numpy(), alpha, span), expected, rtol=1e-12)


@pytest.mark.parametrize("window", [2, 3, 14])
def test_ewm_mean_matches_pandas_alpha_including_its_com_one_gap_rule(window: int) -> None:
    # pandas (adjust=False, com == 1, i.e. alpha 0.5) gives a value after a gap weight 1 - old weight.
    frame = _panel(seed=11)
    expected = frame.ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    alpha = 1 / (1 + (1 - 1 / window) / (1 / window))
    _assert_close(kernels.ewm_mean(frame.to_numpy(), alpha, window), expected, rtol=1e-12)


def test_kernels_accept_any_layout_and_compile_one_specialisation() -> None:
    frame = _panel()
    c_order = np.ascontiguousarray(frame.to_numpy())
    f_order = np.asfortranarray(frame.to_numpy())
    read_only = f_order.view()
    read_only.flags.writeable = False
    results = [kernels.rolling_mean(a, 5) for a in (c_order, f_order, read_only, c_order[:, :1], c_order[:1])]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[3], results[0][:, :1])
    for a in (c_order, f_order[:, :1]):
        kernels.rolling_std(a, 5)
        kernels.ewm_mean(a, 0.2, 5)
    for kernel in (kernels._rolling_mean_nb, kernels._rolling_std_nb, kernels._ewm_mean_nb):
        assert len(kernel.signatures) == 1


def test_kernels_handle_empty_panels_and_refuse_empty_windows() -> None:
    assert kernels.rolling_mean(np.empty((0, 3)), 5).shape == (0, 3)
    assert kernels.rolling_std(np.empty((4, 0)), 5).shape == (4, 0)
    assert kernels.ewm_mean(np.empty((0, 2)), 0.5, 1).shape == (0, 2)
    with pytest.raises(ValueError, match="window"):
        kernels.rolling_mean(np.ones((3, 1)), 0)
    with pytest.raises(ValueError, match="alpha"):
        kernels.ewm_mean(np.ones((3, 1)), 0.0, 1)


@pytest.mark.parametrize("window", [1, 2, 3, 14, 40])
def test_indicators_equal_their_pandas_definitions_exactly(window: int) -> None:
    frame = _panel().abs()
    bars = make_bars({f"S{i}": frame[i].tolist() for i in frame.columns})
    close = bars.close
    clear_cache()
    _same(sma(close, window), close.rolling(window, min_periods=window).mean())
    _same(rolling_std(close, window), close.rolling(window, min_periods=window).std(ddof=0))
    _same(ema(close, window), close.ewm(span=window, adjust=False, min_periods=window).mean())
    _same(rsi(close, window), _pandas_rsi(close, window))
    for periods in (0, window, -window, ROWS + 3):
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = close / close.shift(periods) - 1
        _same(pct_return(close, periods), expected)


def test_rsi_of_flat_and_rising_prices_is_50_and_100() -> None:
    bars = make_bars({"flat": [5.0] * 30, "up": list(range(1, 31)), "late": [np.nan] * 10 + [5.0] * 20})
    value = rsi(bars.close, 3)
    assert (value["flat"].iloc[3:] == 50.0).all()
    assert (value["up"].iloc[3:] == 100.0).all()
    _same(value, _pandas_rsi(bars.close, 3))


def _pandas_rsi(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """Return the RSI as `framework.indicators.rsi` computed it with pandas before the kernels."""
    delta = x.diff()
    gain = delta.clip(lower=0.0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-delta.clip(upper=0.0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100 - 100 / (1 + gain / loss)
    flat = (gain == 0) & (loss == 0)
    return value.where(loss != 0, 100.0).mask(flat, 50.0).where(gain.notna())


def _same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
