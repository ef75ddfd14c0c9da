"""Normaliser: every kind of bad input is refused, counted by reason and logged, never raised."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.clock import SimulatedClock
from framework.events import Bar, Tick
from framework.ingest import REASONS, Normaliser, event_from_mapping
from tests.ingest.helpers import BASE, SECOND, tick

KNOWN = {("SIM", "AAA"), ("SIM", "BBB")}


def make(**options: object) -> Normaliser:
    return Normaliser(KNOWN, SimulatedClock(BASE + 3600 * SECOND), **options)  # type: ignore[arg-type]


def bar(**changes: object) -> Bar:
    good = Bar("SIM", "AAA", "1m", BASE, 100.0, 101.0, 99.0, 100.5, 10.0, 100.2, 7)
    return dataclasses.replace(good, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (dataclasses.replace(tick(1, 100.0), price=math.nan), "non_finite"),
        (dataclasses.replace(tick(1, 100.0), size=math.inf), "non_finite"),
        (dataclasses.replace(tick(1, 100.0), price=-math.inf), "non_finite"),
        (tick(1, 0.0), "non_positive"),
        (tick(1, 100.0, size=-1.0), "non_positive"),
        (tick(1, 100.0, size=0.0), "non_positive"),
        (dataclasses.replace(tick(1, 100.0), time_ns=0), "non_positive"),
        (tick(1, 100.0, symbol="ZZZ"), "unknown_instrument"),
        (dataclasses.replace(tick(1, 100.0), venue="OTHER"), "unknown_instrument"),
        (tick(3600 + 6, 100.0), "future_timestamp"),
        (dataclasses.replace(tick(1, 100.0), trade_id=""), "missing_field"),
        (dataclasses.replace(tick(1, 100.0), symbol=""), "missing_field"),
        (dataclasses.replace(tick(1, 100.0), price="100"), "wrong_type"),
        (dataclasses.replace(tick(1, 100.0), time_ns=1.5e18), "wrong_type"),
        (dataclasses.replace(tick(1, 100.0), trade_id=17), "wrong_type"),
        (dataclasses.replace(tick(1, 100.0), symbol=None), "wrong_type"),
        (dataclasses.replace(tick(1, 100.0), price=True), "wrong_type"),
        (dataclasses.replace(tick(1, 100.0), side=2), "invalid_value"),
        (dataclasses.replace(tick(1, 100.0), side="buy"), "invalid_value"),
        ({"venue": "SIM", "symbol": "AAA", "price": 1.0, "size": 1.0, "trade_id": "x"}, "missing_field"),
        ({"venue": "SIM", "symbol": "AAA", "time_ns": BASE, "trade_id": "x", "price": "abc", "size": 1}, "wrong_type"),
        ({"venue": "SIM", "symbol": "AAA", "time_ns": BASE, "trade_id": "x", "price": "NaN", "size": 1}, "non_finite"),
        (
            {"venue": "SIM", "symbol": "AAA", "time_ns": BASE, "trade_id": "x", "price": 1, "size": 1, "side": "hold"},
            "invalid_value",
        ),
        (None, "wrong_type"),
        (42, "wrong_type"),
        ("SIM,AAA,100", "wrong_type"),
        (object(), "wrong_type"),
        (bar(high=98.0), "invalid_value"),
        (bar(timeframe="7m"), "invalid_value"),
        (bar(close=math.nan), "non_finite"),
        (bar(volume=-1.0), "non_positive"),
        (bar(symbol="ZZZ"), "unknown_instrument"),
        (bar(open_ns=BASE + 7200 * SECOND), "future_timestamp"),
    ],
)
def test_each_kind_of_bad_event_is_refused_and_counted_under_its_reason(event, reason):
    normaliser = make()
    assert normaliser.check(event) is None
    assert normaliser.rejected == {reason: 1}
    assert reason in REASONS
    assert (normaliser.received, normaliser.accepted) == (1, 0)


def test_good_ticks_and_bars_pass_unchanged():
    normaliser = make()
    good = [tick(1, 100.0), tick(1.5, 101.0, symbol="BBB"), bar()]
    assert [normaliser.check(e) for e in good] == good
    assert normaliser.accepted == 3
    assert not normaliser.rejected


def test_dict_messages_are_converted_leniently_then_checked():
    normaliser = make()
    message = {"venue": "SIM", "symbol": "AAA", "time_ns": BASE, "trade_id": 123, "price": "100.5", "size": 2}
    accepted = normaliser.check({**message, "side": "sell"})
    assert accepted == Tick("SIM", "AAA", BASE, "123", 100.5, 2.0, -1)
    assert event_from_mapping({**message, "trade_id": 124, "side": None}) == Tick("SIM", "AAA", BASE, "124", 100.5, 2.0)
    as_bar = {f.name: getattr(bar(), f.name) for f in dataclasses.fields(Bar)}
    assert normaliser.check(as_bar) == bar()
    with pytest.raises(ValueError, match="missing_field"):
        event_from_mapping({"venue": "SIM"})


def test_duplicates_and_out_of_order_ticks_are_refused_within_the_reordering_window():
    normaliser = make(reorder_tolerance_ns=2 * SECOND)
    assert normaliser.check(tick(10.0, 100.0, trade_id="a"))
    assert normaliser.check(tick(10.5, 100.0, trade_id="b"))
    assert normaliser.check(tick(9.0, 100.0, trade_id="c")), "1.5 s late is within the tolerance"
    assert normaliser.check(tick(10.0, 100.0, trade_id="a")) is None
    assert normaliser.check(tick(7.0, 100.0, trade_id="d")) is None
    assert normaliser.check(tick(10.0, 100.0, trade_id="a", symbol="BBB")), "trade ids are per instrument"
    assert normaliser.rejected == {"duplicate": 1, "out_of_order": 1}


def test_trade_ids_are_forgotten_once_behind_the_window_so_memory_stays_bounded():
    normaliser = make(reorder_tolerance_ns=SECOND, max_recent_ids=100)
    for i in range(10_000):
        assert normaliser.check(tick(i * 0.001, 100.0, trade_id=str(i)))
    assert normaliser.check(tick(9.999, 100.0, trade_id="9999")) is None
    assert normaliser.rejected == {"duplicate": 1}
    assert normaliser.check(tick(9.5, 100.0, trade_id="9000")), "forgotten: the 100-id bound was reached"
    assert normaliser.check(tick(0.0, 100.0, trade_id="0")) is None
    assert normaliser.rejected == {"duplicate": 1, "out_of_order": 1}


def test_rejections_are_logged_with_the_raw_message_truncated_and_rate_limited(caplog):
    now = [0.0]
    normaliser = make(log_limit=3, log_window_s=60.0, monotonic=lambda: now[0])
    huge = {"venue": "SIM", "symbol": "AAA", "payload": "x" * 10_000}
    with caplog.at_level(logging.WARNING, logger="framework.ingest.normalise"):
        for _ in range(10):
            normaliser.check(huge)
        normaliser.check(tick(1, -5.0))
        assert len(caplog.records) == 4
        assert all(len(r.getMessage()) < 300 for r in caplog.records)
        assert "missing_field" in caplog.records[0].getMessage()
        assert "'SIM'" in caplog.records[0].getMessage()
        now[0] = 61.0
        normaliser.check(huge)
    assert "7 more missing_field rejections were not logged" in caplog.records[4].getMessage()
    assert normaliser.rejected == {"missing_field": 11, "non_positive": 1}


class _Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __float__(self) -> float:
        raise RuntimeError("no float either")


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.just(_Weird()),
    st.just(BASE),
    st.sampled_from(["SIM", "AAA", "1m", "buy"]),
)
fields = st.sampled_from(
    [
        "venue",
        "symbol",
        "time_ns",
        "trade_id",
        "price",
        "size",
        "side",
        "recv_ns",
        "timeframe",
        "open_ns",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trades",
        "junk",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(fields, values, max_size=18))
def test_arbitrary_dict_messages_never_raise(message):
    normaliser = make()
    result = normaliser.check(message)
    assert result is None or isinstance(result, Tick | Bar)
    assert normaliser.received == 1
    assert normaliser.accepted + sum(normaliser.rejected.values()) == 1


@settings(max_examples=300, deadline=None)
@given(st.builds(Tick, values, values, values, values, values, values, values, values, values))
def test_arbitrary_tick_objects_never_raise(event):
    normaliser = make()
    result = normaliser.check(event)
    if result is not None:
        assert isinstance(result.price, float)
        assert result.price > 0
        assert math.isfinite(result.price)
