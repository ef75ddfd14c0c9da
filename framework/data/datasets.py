"""Real sample datasets that work offline, read from data shipped inside installed packages.

- `GOOG`: Google daily, 2004-2013 (the `backtesting` package's test data).
- `EURUSD`: EUR/USD hourly, 2017-2018 (`backtesting`).
- `BTCUSD`: Bitcoin monthly, 2012-2024 (`backtesting`).
- `AAPL`, `IBM`, `MSFT`: daily, 2000-2013 (`bokeh-sampledata`'s public-domain Quandl WIKI prices,
  split- and dividend-adjusted with the source's adjusted close).
- `STOCKS`: AAPL, GOOG, IBM and MSFT daily on their common dates (a multi-instrument panel).

Every panel is indexed by bar close time in UTC: a daily bar dated D closes at D+1 00:00 UTC.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

from framework.bars import Bars
from framework.errors import DataError, UnknownNameError
from framework.instruments import Instrument

__all__ = ["DATASETS", "dataset_names", "describe_datasets", "load_dataset"]


def _equity(symbol: str) -> Instrument:
    return Instrument(symbol, tick_size=0.01, qty_step=1.0, venue="NASDAQ", asset_class="equity")


def _backtesting_data(name: str) -> Path:
    """Return the path of a CSV shipped in the `backtesting` package, without importing it.

    Importing `backtesting` inside Jupyter prints a warning and loads BokehJS from a CDN.
    """
    spec = importlib.util.find_spec("backtesting")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'backtesting' package (which ships the GOOG, EURUSD and BTCUSD data) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "test" / f"{name}.csv"


def _backtesting_csv(name: str, instrument: Instrument, step: pd.Timedelta, timeframe: str) -> Bars:
    frame = pd.read_csv(_backtesting_data(name), index_col=0, parse_dates=True)
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("UTC") + step
    return Bars.from_frames({instrument.symbol: frame}, instruments=[instrument], timeframe=timeframe)


@cache
def _bokeh_stocks() -> pd.DataFrame:
    source = resources.files("bokeh_sampledata").joinpath("_data/stocks.csv.gz")
    with source.open("rb") as raw, gzip.open(raw, "rt") as fh:
        table = pd.read_csv(fh)
    table.columns = [str(c).strip().lower().replace(" ", "_") for c in table.columns]
    table["time"] = pd.DatetimeIndex(pd.to_datetime(table["date"])).tz_localize("UTC") + pd.Timedelta(days=1)
    # The source's OHLC are unadjusted (splits show as crashes); scale them by adj_close / close.
    factor = table["adj_close"] / table["close"]
    for column in ("open", "high", "low", "close"):
        table[column] = table[column] * factor
    table["volume"] = table["volume"] / factor
    return table.rename(columns={"ticker": "symbol"})


def _bokeh_symbols(symbols: list[str]) -> Bars:
    table = _bokeh_stocks()
    frames = {s: table[table["symbol"] == s].set_index("time") for s in symbols}
    bars = Bars.from_frames(frames, instruments=[_equity(s) for s in symbols], timeframe="1D")
    common = bars.close.notna().all(axis=1)
    return bars.rows(common)


def _stocks() -> Bars:
    goog = load_dataset("GOOG")
    others = _bokeh_symbols(["AAPL", "IBM", "MSFT"])
    frames = {}
    for symbol in ["AAPL", "GOOG", "IBM", "MSFT"]:
        source = goog if symbol == "GOOG" else others
        frames[symbol] = pd.DataFrame({f: source.field(f)[symbol] for f in ("open", "high", "low", "close", "volume")})
    bars = Bars.from_frames(frames, instruments=[_equity(s) for s in frames], timeframe="1D")
    common = bars.close.notna().all(axis=1)
    return bars.rows(common)


DATASETS: dict[str, tuple[str, Callable[[], Bars]]] = {
    "GOOG": (
        "Google daily 2004-2013 (backtesting)",
        lambda: _backtesting_csv("GOOG", _equity("GOOG"), pd.Timedelta(days=1), "1D"),
    ),
    "EURUSD": (
        "EUR/USD hourly 2017-2018 (backtesting)",
        lambda: _backtesting_csv(
            "EURUSD",
            Instrument("EURUSD", tick_size=0.00001, qty_step=1000.0, venue="FX", asset_class="fx"),
            pd.Timedelta(hours=1),
            "1h",
        ),
    ),
    "BTCUSD": (
        "Bitcoin monthly 2012-2024 (backtesting)",
        lambda: _backtesting_csv(
            "BTCUSD",
            Instrument("BTCUSD", tick_size=0.01, qty_step=0.0001, venue="CRYPTO", asset_class="crypto"),
            pd.Timedelta(days=1),
            "1M",
        ),
    ),
    "AAPL": ("Apple daily 2000-2013 (bokeh-sampledata)", lambda: _bokeh_symbols(["AAPL"])),
    "IBM": ("IBM daily 2000-2013 (bokeh-sampledata)", lambda: _bokeh_symbols(["IBM"])),
    "MSFT": ("Microsoft daily 2000-2013 (bokeh-sampledata)", lambda: _bokeh_symbols(["MSFT"])),
    "STOCKS": ("AAPL, GOOG, IBM, MSFT daily on common dates 2004-2013", _stocks),
}


def dataset_names() -> list[str]:
    """Return the names of the shipped datasets."""
    return list(DATASETS)


def describe_datasets() -> dict[str, str]:
    """Return each dataset's one-line description."""
    return {name: text for name, (text, _) in DATASETS.items()}


@cache
def _load(name: str) -> Bars:
    return DATASETS[name][1]()


def load_dataset(name: str) -> Bars:
    """Return a shipped dataset as a `Bars` panel (case-insensitive name), read offline."""
    key = name.upper()
    if key not in DATASETS:
        raise UnknownNameError("dataset", name, dataset_names())
    return _load(key)
