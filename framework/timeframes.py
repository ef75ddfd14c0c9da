"""Bar timeframes rata aggregates and stores, with their lengths in nanoseconds."""

from __future__ import annotations

import pandas as pd

from framework.errors import UnknownNameError

__all__ = ["TIMEFRAMES", "timeframe_ns", "timeframe_timedelta"]

_SECOND = 1_000_000_000
TIMEFRAMES: dict[str, int] = {
    "1s": _SECOND,
    "1m": 60 * _SECOND,
    "5m": 300 * _SECOND,
    "15m": 900 * _SECOND,
    "1h": 3600 * _SECOND,
    "1d": 86400 * _SECOND,
}


def timeframe_ns(timeframe: str) -> int:
    """Return the length of `timeframe` in nanoseconds."""
    if timeframe not in TIMEFRAMES:
        raise UnknownNameError("timeframe", timeframe, list(TIMEFRAMES))
    return TIMEFRAMES[timeframe]


def timeframe_timedelta(timeframe: str) -> pd.Timedelta:
    """Return the length of `timeframe` as a Timedelta."""
    return pd.Timedelta(timeframe_ns(timeframe), unit="ns")
