"""BarAggregator: exact OHLCV/vwap/count per period, emitted when the period closes, by event time."""

from __future__ import annotations

import random

import pytest

from framework.errors import ParameterError, UnknownNameError
from framework.events import Bar
from framework.ingest import BarAggregator
from framework.timeframes import timeframe_ns
from tests.ingest.helpers import (
    BASE,
    SECOND,
    assert_same_bars,
    bar_values,
    reference_bars,
    tick,
)

MINUTE = 60 * SECOND


def test_bars_close_only_when_a_later_tick_shows_their_period_is_over():
    agg = BarAggregator(("1s", "1m"))
    assert agg.on_tick(tick(59.2, 100.0, 1.0)) == []
    assert agg.on_tick(tick(59.5, 102.0, 2.0)) == []
    assert agg.on_tick(tick(59.9, 99.0, 1.0)) == []
    closed = agg.on_tick(tick(60.1, 101.0, 3.0))
    first_second = Bar("SIM", "AAA", "1s", BASE + 59 * SECOND, 100.0, 102.0, 99.0, 99.0, 4.0, 100.75, 3)
    first_minute = Bar("SIM", "AAA", "1m", BASE, 100.0, 102.0, 99.0, 99.0, 4.0, 100.75, 3)
    assert closed == [first_second, first_minute]
    assert agg.on_tick(tick(60.5, 103.0, 1.0)) == []
    assert agg.on_tick(tick(61.0, 100.0, 2.0)) == [
        Bar("SIM", "AAA", "1s", BASE + 60 * SECOND, 101.0, 103.0, 101.0, 103.0, 4.0, 101.5, 2)
    ]
    assert agg.bars_emitted == 3


def test_flush_closes_the_bars_of_a_quiet_instrument_when_their_period_ends():
    agg = BarAggregator(("1s", "1m"))
    for t in (tick(60.1, 101.0, 3.0), tick(60.5, 103.0, 1.0), tick(61.0, 100.0, 2.0)):
        agg.on_tick(t)
    assert agg.flush(BASE + 61_500_000_000) == []
    assert agg.flush(BASE + 62 * SECOND) == [
        Bar("SIM", "AAA", "1s", BASE + 61 * SECOND, 100.0, 100.0, 100.0, 100.0, 2.0, 100.0, 1)
    ]
    assert agg.flush(BASE + 119 * SECOND) == []
    assert agg.flush(BASE + 120 * SECOND) == [
        Bar("SIM", "AAA", "1m", BASE + MINUTE, 101.0, 103.0, 100.0, 100.0, 6.0, 101.0, 3)
    ]
    assert agg.flush(BASE + 10 * MINUTE) == []
    assert agg.open_bars() == []


def test_a_tick_for_a_bar_already_emitted_is_counted_late_and_not_merged():
    agg = BarAggregator(("1s", "1m"))
    agg.on_tick(tick(10.2, 100.0))
    agg.on_tick(tick(11.4, 100.0))  # closes the 1s bar [10, 11)
    assert agg.on_tick(tick(10.9, 500.0)) == []
    agg.flush(BASE + MINUTE)  # closes everything
    assert agg.on_tick(tick(59.0, 500.0)) == []
    assert agg.late_ticks == 2
    assert agg.flush_all() == []
    assert agg.on_tick(tick(60.0, 100.0)) == []
    assert [b.trades for b in agg.open_bars()] == [1]


def test_instruments_are_aggregated_independently():
    agg = BarAggregator(("1s",))
    agg.on_tick(tick(1.1, 100.0, symbol="AAA"))
    assert agg.on_tick(tick(5.0, 50.0, symbol="BBB")) == []
    assert [b.symbol for b in agg.on_tick(tick(2.0, 101.0, symbol="AAA"))] == ["AAA"]
    assert sorted((b.symbol, b.open_ns) for b in agg.flush_all()) == [
        ("AAA", BASE + 2 * SECOND),
        ("BBB", BASE + 5 * SECOND),
    ]


def test_every_timeframe_matches_a_plain_group_by_over_hours_of_random_trades():
    rng = random.Random(11)
    ticks, t, prices = [], 0.0, {"AAA": 100.0, "BBB": 20.0, "CCC": 3.0}
    while t < 3 * 3600:
        t += rng.expovariate(1 / 0.8) if rng.random() < 0.98 else rng.uniform(30, 900)
        symbol = rng.choice(list(prices))
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.001)), 4)
        ticks.append(tick(t, prices[symbol], round(rng.uniform(0.01, 5), 3), symbol))
    timeframes = ("1s", "1m", "5m", "15m", "1h", "1d")
    agg = BarAggregator(timeframes)
    emitted: list[Bar] = []
    for i, trade in enumerate(ticks):
        closed = agg.on_tick(trade)
        assert all(b.open_ns + timeframe_ns(b.timeframe) <= trade.time_ns for b in closed)
        emitted += closed
        if i % 97 == 0:
            emitted += agg.flush(trade.time_ns - 3 * SECOND)
    emitted += agg.flush_all()
    assert agg.late_ticks == 0
    want = {}
    for tf in timeframes:
        want.update(reference_bars(ticks, tf))
    assert_same_bars(bar_values(emitted), want)
    assert len(emitted) == agg.bars_emitted > 500


def test_timeframes_are_validated():
    with pytest.raises(UnknownNameError):
        BarAggregator(("7m",))
    with pytest.raises(ParameterError):
        BarAggregator(())
    assert BarAggregator(("1h", "1m", "1m")).timeframes == ("1m", "1h")


def test_the_bar_in_progress_and_its_open_are_known_from_its_first_trade():
    agg = BarAggregator(("1s", "1m"))
    agg.opened = []
    assert agg.forming("AAA", "1s") is None
    agg.on_tick(tick(59.2, 100.0, 1.0))
    agg.on_tick(tick(59.5, 102.0, 2.0))
    assert agg.forming("AAA", "1s") == (BASE + 59 * SECOND, BASE + 60 * SECOND, 100.0)
    assert agg.forming("AAA", "1m") == (BASE, BASE + MINUTE, 100.0)
    agg.on_tick(tick(60.1, 101.0, 3.0))  # closes second 59, opens second 60
    assert agg.forming("AAA", "1s") == (BASE + 60 * SECOND, BASE + 61 * SECOND, 101.0)
    assert agg.forming("BBB", "1s") is None
    assert agg.opened == ["AAA", "AAA"]  # one per opened (shortest) bar
