from __future__ import annotations

import pandas as pd
import pytest

from framework import Bars, DataError
from framework.data import load_file
from tests.conftest import make_bars


def test_bars_require_utc_aware_increasing_index():
    frame = pd.DataFrame(
        {"open": [1.0, 2.0], "high": [1.0, 2.0], "low": [1.0, 2.0], "close": [1.0, 2.0], "volume": [1.0, 1.0]},
        index=pd.to_datetime(["2024-01-02", "2024-01-01"]),
    )
    bars = Bars.from_frames({"A": frame})
    assert bars.index.tz is not None
    assert bars.index.is_monotonic_increasing
    duplicated = frame.iloc[[0, 0]]
    with pytest.raises(DataError, match="duplicate bar times"):
        Bars.from_frames({"A": duplicated})


def test_negative_prices_and_missing_columns_are_clear_errors():
    index = pd.date_range("2024", periods=2, tz="UTC")
    with pytest.raises(DataError, match="missing OHLCV columns"):
        Bars.from_frames({"A": pd.DataFrame({"close": [1.0, 2.0]}, index=index)})
    bad = pd.DataFrame({c: [1.0, -2.0] for c in ("open", "high", "low", "close", "volume")}, index=index)
    with pytest.raises(DataError, match="positive"):
        Bars.from_frames({"A": bad})


def test_slicing_selecting_and_long_round_trip():
    bars = make_bars({"A": [1, 2, 3, 4], "B": [5, 6, 7, 8]})
    assert len(bars.iloc[1:3]) == 2
    assert bars.select(["B"]).symbols == ["B"]
    long = bars.to_long()
    assert len(long) == 8
    back = Bars.from_long(long)
    pd.testing.assert_frame_equal(back.close, bars.close, check_freq=False)


def test_resample_to_weekly_labels_by_close_time():
    bars = make_bars({"A": list(range(1, 15))}, start="2024-01-01")
    weekly = bars.resample("7D")
    assert weekly.close["A"].iloc[0] == 1.0 or weekly.open["A"].iloc[0] == 1.0
    assert weekly.high["A"].max() == 14.0
    assert weekly.volume["A"].sum() == 14 * 1000.0


def test_load_csv_and_parquet_shift_open_labels_to_close_time(tmp_path):
    frame = pd.DataFrame(
        {
            "timestamp": [1704067200000, 1704070800000, 1704074400000],
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
            "volume": [10.0, 20.0, 30.0],
        }
    )
    csv = tmp_path / "btc.csv"
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "btc.parquet"
    frame.to_parquet(parquet)
    from_csv = load_file(csv, symbol="BTCUSDT")
    from_parquet = load_file(parquet, symbol="BTCUSDT", timeframe="1h")
    assert from_csv.index[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
    pd.testing.assert_frame_equal(from_csv.close, from_parquet.close, check_freq=False)
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "missing.csv")
