"""Load OHLCV bars from CSV and Parquet files into a `Bars` panel."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import pandas as pd

from framework.bars import Bars
from framework.errors import DataError
from framework.instruments import Instrument

__all__ = ["TimeLabel", "load_file", "read_ohlcv"]

TimeLabel = Literal["open", "close"]

_TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "open_time", "close_time")


def read_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a frame indexed by UTC time, with lower-case OHLCV columns.

    The time is the first column named time/timestamp/date/datetime (or the file's index).
    Integer times are taken as milliseconds since the epoch (the exchange convention).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
            frame = pd.read_csv(path)
        else:
            raise DataError(f"{path.name}: unsupported file type (use .csv or .parquet)")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path.name}: cannot read: {exc}") from exc
    frame = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    time_col = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    times: pd.Series | pd.Index
    if time_col is None and isinstance(frame.index, pd.DatetimeIndex):
        times = frame.index
    elif time_col is None and len(frame.columns) and str(frame.columns[0]).startswith("unnamed"):
        times = frame.pop(frame.columns[0])
    elif time_col is not None:
        times = frame.pop(time_col)
    else:
        raise DataError(f"{path.name}: no time column (expected one of {', '.join(_TIME_COLUMNS)})")
    frame.index = _to_utc(pd.Series(times) if not isinstance(times, pd.Series) else times, path.name)
    frame.index.name = "time"
    return frame


def _to_utc(times: pd.Series, name: str) -> pd.DatetimeIndex:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if pd.api.types.is_integer_dtype(times):
                index = pd.DatetimeIndex(pd.to_datetime(times.to_numpy(), unit="ms", utc=True))
            else:
                index = pd.DatetimeIndex(pd.to_datetime(times.to_numpy(), utc=True))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name}: cannot parse times: {exc}") from exc
    if index.hasnans:
        raise DataError(f"{name}: some times are missing")
    return index


def load_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    label: TimeLabel = "open",
    instrument: Instrument | None = None,
) -> Bars:
    """Load one instrument's bars from a CSV or Parquet file.

    Rows are labelled by their bar's `open` time in most files (exchange klines, daily dates); the
    panel is indexed by close time, so open-labelled times are moved forward by the `timeframe`
    (default: the typical spacing of the file). A file with a `symbol` column may hold several
    instruments.
    """
    frame = read_ohlcv(path)
    if label == "open":
        step = _timeframe_step(timeframe) if timeframe else _typical_step(frame.index)
        frame.index = frame.index + step
    name = symbol or (instrument.symbol if instrument else Path(path).name.split(".")[0].upper())
    instruments = [instrument] if instrument else []
    if "symbol" in frame.columns:
        frames = {str(s): g.drop(columns="symbol") for s, g in frame.groupby("symbol", sort=True)}
        return Bars.from_frames(frames, instruments=instruments, timeframe=timeframe)
    return Bars.from_frames({name: frame.sort_index()}, instruments=instruments, timeframe=timeframe)


def _typical_step(index: pd.Index) -> pd.Timedelta:
    unique = pd.DatetimeIndex(index).unique().sort_values()
    if len(unique) < 2:
        raise DataError("cannot infer the bar duration from fewer than two bars; give timeframe")
    return pd.Timedelta(pd.Series(unique).diff().median())


def _timeframe_step(timeframe: str) -> pd.Timedelta:
    try:
        offset = pd.tseries.frequencies.to_offset(timeframe)
        return pd.Timedelta(offset.nanos, unit="ns")
    except (ValueError, TypeError) as exc:
        raise DataError(f"invalid timeframe {timeframe!r} (use e.g. 1min, 1h, 1D)") from exc
