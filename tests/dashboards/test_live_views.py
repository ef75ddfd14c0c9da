"""The live dashboard's pure parts: what the tables, badges and charts make of the API's JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from bokeh.core.properties import value

from dashboards.live_chart import CandleChart, EquityChart, epoch_ms
from dashboards.live_client import Login
from dashboards.live_events import chart_symbol, snapshot_update, sort_events
from dashboards.live_indicators import SLOTS, IndicatorLayers, indicator_choices
from dashboards.live_panels import as_declared, instance_class
from dashboards.live_stream import Subscription
from dashboards.live_views import feed_html, orders_frame, parse_metrics, positions_frame, state_html

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _bar(second: int, close: float = 10.0, symbol: str = "SYN000") -> dict[str, Any]:
    opened = T0 + timedelta(seconds=second)
    return {
        "venue": "SIM",
        "symbol": symbol,
        "timeframe": "1s",
        "time": opened.isoformat().replace("+00:00", "Z"),
        "close_time": (opened + timedelta(seconds=1)).isoformat(),
        "open": 10.0,
        "high": max(10.0, close) + 0.1,
        "low": min(10.0, close) - 0.1,
        "close": close,
        "volume": 5.0,
    }


def _order(client_id: str, status: str, created: str) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "strategy": "sma-fast",
        "symbol": "SYN000",
        "side": "buy",
        "type": "limit",
        "quantity": "1.0",
        "limit_price": "5.0",
        "filled": "0",
        "status": status,
        "created_at": created,
    }


def test_streamed_bars_append_in_time_order_without_duplicates_and_roll_over():
    chart = CandleChart(keep=5)
    chart.reset("SYN000", "1s", 1000.0, [_bar(0), _bar(1, 9.0)])
    assert chart.add_bars([_bar(1), _bar(2, 11.0), _bar(2), _bar(0)]) == 1, "only the newer bar is added"
    assert chart.add_bars([_bar(3, symbol="SYN001")]) == 0, "another instrument's bar is not charted"
    assert chart.add_bars([_bar(s) for s in range(3, 9)]) == 6
    opened = chart.candles.data["open_time"]
    assert list(opened) == [epoch_ms(T0 + timedelta(seconds=s)) for s in range(4, 9)], "the last `keep` candles"
    assert chart.candles.data["time"][0] == opened[0] + 500.0, "a candle is centred on its second"
    assert chart.candles.data["color"][0] == chart.candles.data["color"][-1]


def test_stored_bars_fill_in_around_the_streamed_ones_by_open_time():
    chart = CandleChart(keep=10)
    chart.reset("SYN000", "1s", 1000.0, [])
    chart.add_bars([_bar(5, 12.0), _bar(6)])
    chart.refill([_bar(s) for s in range(7)])  # history loaded after subscribing
    assert list(chart.candles.data["open_time"]) == [epoch_ms(T0 + timedelta(seconds=s)) for s in range(7)]
    assert chart.candles.data["close"][5] == 12.0, "a streamed bar is kept over its stored copy"
    assert chart.add_bars([_bar(6)]) == 0
    chart.add_bars([_bar(9)])
    chart.refill([_bar(7), _bar(8)])  # what a reconnecting stream missed
    assert list(chart.candles.data["open_time"])[-3:] == [epoch_ms(T0 + timedelta(seconds=s)) for s in (7, 8, 9)]
    chart.refill([_bar(s) for s in range(20, 25)])
    assert len(chart.candles.data["open_time"]) == 10, "the newest `keep` candles"
    assert chart.add_bars([_bar(24)]) == 0


def test_fills_of_the_charted_instrument_are_marked_buys_up_sells_down():
    chart = CandleChart()
    chart.reset("SYN000", "1s", 1000.0, [_bar(2)])
    when = (T0 + timedelta(seconds=3)).isoformat()
    fills = [
        {"symbol": "SYN000", "side": "buy", "price": "10.5", "quantity": "2", "strategy": "a", "time": when},
        {"symbol": "SYN000", "side": "sell", "price": "10.6", "quantity": "2", "strategy": "a", "time": when},
        {"symbol": "SYN001", "side": "buy", "price": "1", "quantity": "1", "strategy": "a", "time": when},
        {"symbol": "SYN000", "side": "buy", "price": "9", "quantity": "1", "strategy": "a", "time": T0.isoformat()},
    ]
    assert chart.add_fills(fills) == 2, "other instruments and fills before the first candle are left out"
    assert list(chart.fills.data["marker"]) == ["triangle", "inverted_triangle"]
    assert list(chart.fills.data["price"]) == [10.5, 10.6]


def test_equity_points_stream_once_each():
    equity = EquityChart()
    points = [{"time": (T0 + timedelta(seconds=s)).isoformat(), "equity": str(100 + s)} for s in range(3)]
    equity.reset(points[:2])
    equity.add(points)
    assert list(equity.source.data["equity"]) == [100.0, 101.0, 102.0]


def test_events_update_open_orders_positions_instances_and_the_account_state():
    orders = {"a": _order("a", "accepted", "2026-11-27T12:00:00Z")}
    events = [
        ("orders", _order("b", "submitted", "2026-11-27T12:00:01Z")),
        ("orders", _order("a", "cancelled", "2026-11-27T12:00:00Z")),
        ("positions", {"strategy": "s", "symbol": "SYN000", "quantity": "3"}),
        ("strategies", {"id": "s", "state": "running"}),
        ("risk", {"kind": "state", "scope": "*", "state": "halted", "reason": "kill switch"}),
        ("risk", {"kind": "state", "scope": "s", "state": "halted", "reason": "only s"}),
        ("equity", {"strategy": "s", "equity": "1"}),
        ("equity", {"strategy": "*", "equity": "2"}),
        ("bars:SYN000:1s", _bar(0)),
        ("ticks:SYN000", _tick(0.5, 10.0)),
        ("fills", {"client_id": "b"}),
    ]
    batch = sort_events(events, positions={}, open_orders=orders, instances={"s": {"id": "s", "state": "stopped"}})
    assert set(batch.update["open_orders"]) == {"b"}, "a cancelled order leaves the open orders"
    assert batch.update["positions"][("s", "SYN000")]["quantity"] == "3"
    assert batch.update["instances"]["s"]["state"] == "running"
    assert (batch.update["trading_state"], batch.update["trading_reason"]) == ("halted", "kill switch")
    assert [p["equity"] for p in batch.equity] == ["2"], "the chart shows the account's equity"
    assert len(batch.bars) == 1
    assert len(batch.ticks) == 1
    assert len(batch.fills) == 1
    assert orders["a"]["status"] == "accepted", "the state given is not changed in place"


def test_tables_show_open_orders_newest_first_and_open_positions_biggest_first():
    frame = orders_frame(
        [
            _order("old", "accepted", "2026-11-27T12:00:00Z"),
            _order("new", "partially_filled", "2026-11-27T12:00:05Z"),
            _order("done", "filled", "2026-11-27T12:00:09Z"),
        ]
    )
    assert list(frame["client_id"]) == ["new", "old"]
    positions = [
        {"strategy": "s", "symbol": "A", "side": "long", "quantity": "1", "avg_price": "10", "mark": "10",
         "unrealised": "0", "realised": "0", "fees": "0"},
        {"strategy": "s", "symbol": "B", "side": "short", "quantity": "-5", "avg_price": "10", "mark": "10",
         "unrealised": "0", "realised": "0", "fees": "0"},
        {"strategy": "s", "symbol": "C", "side": "flat", "quantity": "0", "avg_price": None, "mark": "3",
         "unrealised": "0", "realised": "7", "fees": "1"},
    ]  # fmt: skip
    assert list(positions_frame(positions)["symbol"]) == ["B", "A"]


def test_feed_health_is_read_from_the_prometheus_exposition():
    text = (
        '# TYPE rata_feed_connected gauge\nrata_feed_connected{feed="synthetic"} 1.0\n'
        '# TYPE rata_feed_staleness_seconds gauge\nrata_feed_staleness_seconds{feed="synthetic"} 0.4\n'
        '# TYPE rata_ticks_received counter\nrata_ticks_received_total{feed="synthetic"} 1234.0\n'
        "# TYPE rata_orders counter\nrata_orders_total 5.0\n"
    )
    samples = parse_metrics(text)
    assert samples["rata_ticks_received_total{feed=synthetic}"] == 1234.0
    assert not [k for k in samples if k.startswith("rata_orders")]
    ready = {"ready": True, "runner": "running", "mode": "dev", "database": True, "reconciled": True}
    assert 'data-healthy="yes"' in feed_html(ready, samples, 250.0, {"status": "live", "received": 3})
    stale = {**samples, "rata_feed_staleness_seconds{feed=synthetic}": 30.0}
    assert 'data-healthy="no"' in feed_html(ready, stale, 0.0, {})


def test_small_pieces_say_what_they_mean():
    assert 'data-state="halted"' in state_html("halted", "kill switch")
    assert "HALTED" in state_html("halted", "")
    spec = {"name": "fast", "type": "int", "default": 10, "bounds": [2.0, 200.0], "choices": None, "doc": None}
    assert as_declared(spec)["bounds"] == [2, 200]
    assert instance_class("sma.fast_1") == "rata-instance-sma-fast_1"
    message = json.loads(Subscription("bars", "SYN000", "1s").message("subscribe"))
    assert message == {"op": "subscribe", "channel": "bars", "symbol": "SYN000", "timeframe": "1s"}
    login = Login.from_response(
        {"username": "bob", "role": "trader", "access_token": "a", "refresh_token": "r", "expires_in": 600}
    )
    assert login.expires_at - login.issued_at == 600


def test_the_first_snapshot_fills_the_state_and_the_chart_starts_on_a_running_strategy():
    instances = [{"state": "stopped", "symbols": ["SYN009"]}, {"state": "running", "symbols": ["SYN003", "SYN004"]}]
    assert chart_symbol(instances, ["SYN000"]) == "SYN003"
    assert chart_symbol([], ["SYN000"]) == "SYN000"
    update = snapshot_update(
        account=None,
        limits={"scope": "*", "limits": {"max_open_orders": 5}},
        positions=[{"strategy": "s", "symbol": "A", "quantity": "1"}],
        fills={"items": [{"client_id": "x"}], "next_cursor": None},
        orders=[{"items": [_order("a", "accepted", "2026-11-27T12:00:00Z")]}, None],
        risk={"state": "reducing", "reason": "daily loss", "scopes": []},
    )
    assert update["account"] == {}, "a failed call leaves its part empty"
    assert update["limits"] == {"max_open_orders": 5}
    assert set(update["open_orders"]) == {"a"}
    assert (update["trading_state"], update["trading_reason"]) == ("reducing", "daily loss")


def _tick(second: float, price: float, symbol: str = "SYN000", trade_id: str = "t") -> dict[str, Any]:
    when = T0 + timedelta(seconds=second)
    return {
        "venue": "SIM",
        "symbol": symbol,
        "time": when.isoformat(),
        "trade_id": trade_id,
        "price": price,
        "size": 2.0,
    }


def test_trades_build_the_forming_candle_until_its_bar_closes():
    chart = CandleChart()
    chart.reset("SYN000", "1s", 1000.0, [_bar(0), _bar(1)])
    taken = chart.add_ticks(
        [
            _tick(1.9, 8.0, trade_id="late"),  # its second has its bar already
            _tick(2.1, 10.0, trade_id="a"),
            _tick(2.4, 12.0, trade_id="b"),
            _tick(2.5, 9.0, symbol="SYN001", trade_id="other"),
            _tick(2.7, 11.0, trade_id="c"),
        ]
    )
    assert taken == 3
    forming = chart.forming.data
    assert list(forming["open_time"]) == [epoch_ms(T0 + timedelta(seconds=2))]
    row = {k: forming[k][0] for k in ("open", "high", "low", "close", "volume", "trades", "trade_id")}
    assert row == {"open": 10.0, "high": 12.0, "low": 10.0, "close": 11.0, "volume": 6.0, "trades": 3, "trade_id": "c"}
    assert (chart.last_price.location, chart.last_price.visible) == (11.0, True)
    chart.add_ticks([_tick(3.2, 13.0, trade_id="d")])
    assert len(chart.forming.data["open_time"]) == 2, "the next second starts before the bar closes"
    chart.add_bars([_bar(2, 11.0)])
    assert list(chart.forming.data["trade_id"]) == ["d"], "the closed bar replaces its forming candle"
    chart.reset("SYN000", "1s", 1000.0, [])
    assert list(chart.forming.data["open_time"]) == []
    assert not chart.last_price.visible


def _indicators(instance: str, seconds: range, timeframe: str = "1s") -> dict[str, Any]:
    times = [(T0 + timedelta(seconds=s)).isoformat() for s in seconds]
    return {
        "instance": instance,
        "strategy": "sma_cross",
        "symbol": "SYN000",
        "timeframe": timeframe,
        "source": "engine",
        "times": times,
        "indicators": [
            {"name": "fast_sma", "overlay": True, "values": [None, *(float(s) for s in seconds[1:])]},
            {"name": "slow_sma", "overlay": True, "values": [float(s) + 0.5 for s in seconds]},
            {"name": "rsi", "overlay": False, "values": [50.0 for _ in seconds]},
        ],
    }


def test_indicators_are_drawn_over_the_price_or_in_their_pane_and_stream_with_new_bars():
    chart = CandleChart(keep=5)
    layers = IndicatorLayers(chart.price, chart.x_range, keep=5)
    first = epoch_ms(T0 + timedelta(seconds=1))
    layers.show(_indicators("sma", range(4)), after_ms=first - 1000.0)
    over, under = layers.overlays.source, layers.oscillators.source
    assert over.tags == ["fast_sma", "slow_sma"]
    assert under.tags == ["rsi"]
    assert list(over.data["open_time"]) == [epoch_ms(T0 + timedelta(seconds=s)) for s in (1, 2, 3)]
    assert over.data["time"][0] == over.data["open_time"][0] + 500.0, "centred like the candles"
    assert list(over.data["y1"]) == [1.5, 2.5, 3.5]
    assert all(math.isnan(v) for v in over.data["y2"]), "an unused slot draws nothing"
    assert [line.visible for line in layers.overlays.lines] == [True, True] + [False] * (SLOTS - 2)
    assert layers.overlays.items[0].label == value("fast sma")
    assert layers.pane.visible
    assert layers.add(_indicators("sma", range(2, 7))) == 3, "only the newer rows"
    assert list(over.data["y0"]) == [2.0, 3.0, 4.0, 5.0, 6.0], "rolled over to the newest `keep`"
    assert len(under.data["y0"]) == 5
    assert layers.add(_indicators("other", range(7, 9))) == 0, "an answer about another instance is dropped"
    first_null = _indicators("sma", range(3))
    layers.show(first_null)
    assert math.isnan(over.data["y0"][0]), "null: not warmed up yet"
    layers.clear()
    assert over.tags == []
    assert not layers.pane.visible
    assert not any(line.visible for line in layers.overlays.lines)


def test_the_indicators_shown_first_are_those_of_a_running_instance_on_the_chart_timeframe():
    instances = [
        {"id": "slow", "strategy": "bollinger_breakout", "timeframe": "1m", "state": "running", "symbols": ["A"]},
        {"id": "off", "strategy": "rsi_reversion", "timeframe": "1s", "state": "stopped", "symbols": ["A"]},
        {"id": "sma", "strategy": "sma_cross", "timeframe": "1s", "state": "running", "symbols": ["A", "B"]},
        {"id": "else", "strategy": "sma_cross", "timeframe": "1s", "state": "running", "symbols": ["B"]},
    ]
    options, default = indicator_choices(instances, "A", "1s")
    assert options == {
        "none": "",
        "off (rsi_reversion, 1s)": "off",
        "slow (bollinger_breakout, 1m)": "slow",
        "sma (sma_cross, 1s)": "sma",
    }
    assert default == "sma"
    assert indicator_choices(instances, "A", "1m")[1] == "slow"
    assert indicator_choices(instances[:2], "A", "1s")[1] == "slow", "else any running one"
    assert indicator_choices(instances[1:2], "A", "1s")[1] == "", "none when none runs"


def test_the_research_price_chart_draws_the_strategy_s_indicators_too():
    from dashboards.research_charts import BacktestCharts
    from framework import backtest, load_dataset
    from framework.indicators import rsi, sma
    from strategies.rsi_reversion import RsiReversion
    from strategies.sma_cross import SmaCross

    stocks = load_dataset("STOCKS")
    charts = BacktestCharts()
    charts.show(backtest(SmaCross(fast=5, slow=25), stocks), "IBM")
    assert charts.overlays.source.tags == ["fast_sma", "slow_sma"]
    assert list(charts.overlays.source.data["y1"][-3:]) == list(sma(stocks.close, 25)["IBM"].iloc[-3:])
    assert not charts.oscillator_pane.visible
    charts.show(backtest(RsiReversion(window=14), stocks), "IBM")
    assert charts.overlays.source.tags == []
    assert charts.oscillators.source.tags == ["rsi", "oversold", "overbought"]
    assert list(charts.oscillators.source.data["y0"][-3:]) == list(rsi(stocks.close, 14)["IBM"].iloc[-3:])
    assert charts.oscillator_pane.visible
