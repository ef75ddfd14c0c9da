"""Shared fixtures: small hand-made panels and the shipped datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Instrument, load_dataset


def make_bars(
    closes: dict[str, list[float]],
    *,
    opens: dict[str, list[float]] | None = None,
    start: str = "2024-01-02",
    freq: str = "1D",
    qty_step: float = 1.0,
) -> Bars:
    """Return a panel from close (and optionally open) prices; high/low bracket open and close."""
    frames = {}
    for symbol, close in closes.items():
        index = pd.date_range(start, periods=len(close), freq=freq, tz="UTC")
        open_ = (opens or {}).get(symbol, close)
        frame = pd.DataFrame({"open": open_, "close": close}, index=index, dtype=float)
        frame["high"] = frame[["open", "close"]].max(axis=1)
        frame["low"] = frame[["open", "close"]].min(axis=1)
        frame["volume"] = 1000.0
        frames[symbol] = frame
    instruments = [Instrument(s, qty_step=qty_step) for s in closes]
    return Bars.from_frames(frames, instruments=instruments, timeframe=freq)


@pytest.fixture(scope="session")
def goog() -> Bars:
    return load_dataset("GOOG")


@pytest.fixture(scope="session")
def stocks() -> Bars:
    return load_dataset("STOCKS")


@pytest.fixture
def random_walk() -> Bars:
    rng = np.random.default_rng(7)
    closes = {s: list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))) for s in ("AAA", "BBB")}
    return make_bars(closes)


pytest_plugins = ["tests.db"]
