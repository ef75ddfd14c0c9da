from __future__ import annotations

import pytest

from framework import UnknownNameError, load_dataset
from framework.data import dataset_names


@pytest.mark.parametrize("name", dataset_names())
def test_every_shipped_dataset_loads_offline_as_a_clean_panel(name):
    bars = load_dataset(name)
    assert len(bars) > 100
    assert bars.index.tz is not None
    assert bars.close.notna().all().all()
    assert ((bars.high >= bars.low) | bars.high.isna()).all().all()


def test_stocks_is_a_multi_instrument_panel_on_common_dates():
    stocks = load_dataset("STOCKS")
    assert stocks.symbols == ["AAPL", "GOOG", "IBM", "MSFT"]
    # adjusted prices: AAPL's 2005 2-for-1 split must not show as a 50% overnight crash
    assert (stocks.close["AAPL"].pct_change().dropna().abs() < 0.35).all()


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown dataset 'NOPE'; valid: GOOG"):
        load_dataset("NOPE")
