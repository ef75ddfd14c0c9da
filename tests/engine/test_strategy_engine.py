"""The strategy engine: shared rolling panels, decisions at bar close, disabling broken strategies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Param, Signals, Strategy
from framework.engine.instances import InstanceSpec, InstanceState, InstanceStore
from framework.engine.intents import OrderIntent
from framework.engine.panel import RollingPanel
from framework.engine.strategy_engine import StrategyEngine
from framework.errors import ParameterError, UnknownNameError
from framework.events import Bar
from framework.instruments import Instrument
from framework.orders.model import Fill, Order, OrderSide
from framework.orders.positions import PositionBook
from framework.storage import Database

SECOND = 1_000_000_000
SYMBOLS = ("A", "B", "C")
INSTRUMENTS = {s: Instrument(s, qty_step=0.01) for s in SYMBOLS}


class Recorder:
    """An intent sink that fills nothing and remembers what it was given (the engine's only output)."""

    def __init__(self) -> None:
        self.batches: list[list[OrderIntent]] = []

    async def submit_many(self, intents: Sequence[OrderIntent]) -> list[Order]:
        self.batches.append(list(intents))
        return []


class Crosses(Strategy):
    """Long when the close is above its `window`-bar mean."""

    window = Param(3, bounds=(2, 50))
    warmup = "window"

    def signals(self, data: Bars) -> Signals:
        mean = data.close.rolling(self.window).mean()
        above = data.close > mean
        return Signals(
            entries=above & ~above.shift(1, fill_value=False), exits=~above & above.shift(1, fill_value=False)
        )


class Raises(Crosses):
    def signals(self, data: Bars) -> Signals:
        raise ZeroDivisionError("boom")


class Sleeps(Crosses):
    def signals(self, data: Bars) -> Signals:
        time.sleep(0.5)
        return super().signals(data)


def bar(symbol: str, close_s: int, price: float) -> Bar:
    return Bar("SIM", symbol, "1s", (close_s - 1) * SECOND, price, price, price, price, 1.0, price, 1)


def spec(id_: str, strategy: Strategy, symbols: Sequence[str] = SYMBOLS) -> InstanceSpec:
    return InstanceSpec(
        id=id_,
        strategy=type(strategy).__name__,
        params=dict(strategy.values),
        venue="paper",
        symbols=tuple(symbols),
        timeframe="1s",
        capital=Decimal(3000),
        state=InstanceState.RUNNING,
    )


async def engine_with(*pairs: tuple[str, Strategy], timeout: float = 5.0) -> tuple[StrategyEngine, Recorder]:
    sink = Recorder()
    engine = StrategyEngine(sink, PositionBook(), INSTRUMENTS, decision_timeout_s=timeout)
    for id_, strategy in pairs:
        await engine.add(spec(id_, strategy), strategy=strategy)
    return engine, sink


def test_panel_window_carries_quiet_symbols_forward_and_rolls() -> None:
    panel = RollingPanel(["A", "B"], 3, timeframe="1s")
    panel.append(1 * SECOND, [bar("A", 1, 10.0), bar("B", 1, 20.0)])
    panel.append(2 * SECOND, [bar("A", 2, 11.0)])  # B silent: carried forward with zero volume
    window = panel.window()
    assert window.close["B"].tolist() == [20.0, 20.0]
    assert window.volume["B"].tolist() == [1.0, 0.0]
    for t in range(3, 8):
        panel.append(t * SECOND, [bar("A", t, 10.0 + t), bar("B", t, 20.0 + t)])
    window = panel.window()
    assert len(window) == 3
    assert window.close["A"].tolist() == [15.0, 16.0, 17.0]
    assert list(window.index.as_unit("ns").asi8) == [5 * SECOND, 6 * SECOND, 7 * SECOND]
    with pytest.raises(Exception, match="not after"):
        panel.append(7 * SECOND, [])


async def test_decides_on_each_complete_close_with_the_backtests_decision() -> None:
    engine, sink = await engine_with(("x", Crosses(window=3)))
    prices = {"A": [10, 10, 10, 9, 12, 13], "B": [5, 5, 5, 5, 5, 5], "C": [7, 7, 7, 6, 5, 4]}
    for t in range(6):
        reports = await engine.on_bars([bar(s, t + 1, float(prices[s][t])) for s in ("A", "B")])
        assert reports == []  # C has not sent its bar for this close yet
        reports = await engine.on_bars([bar("C", t + 1, float(prices["C"][t]))])
        assert len(reports) == 1
        assert reports[0].close_ns == (t + 1) * SECOND
    intents = [i for batch in sink.batches for i in batch]
    assert [(i.symbol, i.side, i.reason) for i in intents] == [("A", OrderSide.BUY, "enter long")]
    entry = intents[0]
    assert entry.cash_limit == Decimal(1000)  # one sleeve: capital / 3 instruments
    assert entry.decision_ns == 5 * SECOND
    frame = pd.DataFrame(prices, index=pd.date_range("2024-01-01", periods=6, freq="1s", tz="UTC"), dtype=float)
    data = Bars(frame, frame, frame, frame, frame * 0 + 1)
    expected = Crosses(window=3).decide_arrays(data).arrays["entries"]
    assert np.flatnonzero(expected[:, 0]).tolist() == [4]


async def test_exit_sells_the_whole_position_from_the_fills() -> None:
    engine, sink = await engine_with(("x", Crosses(window=2)))
    book = engine.book
    assert isinstance(book, PositionBook)
    book.apply(Fill("t1", "c1", "paper", "A", OrderSide.BUY, Decimal("12.34"), Decimal(10), strategy="x"))
    for t, price in enumerate([10.0, 12.0, 13.0, 9.0]):
        await engine.on_bars([bar(s, t + 1, price if s == "A" else 5.0) for s in SYMBOLS])
    sells = [i for batch in sink.batches for i in batch if i.side is OrderSide.SELL]
    assert [(i.symbol, i.quantity, i.reason) for i in sells] == [("A", Decimal("12.34"), "exit long")]


async def test_a_strategy_that_raises_is_disabled_and_the_others_go_on() -> None:
    engine, sink = await engine_with(("bad", Raises(window=2)), ("good", Crosses(window=2)))
    states: list[tuple[str, InstanceState, str | None]] = []

    async def listen(instance: str, state: InstanceState, error: str | None) -> None:
        states.append((instance, state, error))

    engine.add_listener(listen)
    for t, price in enumerate([10.0, 10.0, 9.0, 12.0]):
        await engine.on_bars([bar(s, t + 1, price) for s in SYMBOLS])
    assert engine.get("bad").state is InstanceState.DISABLED
    assert "ZeroDivisionError: boom" in (engine.get("bad").last_error or "")
    assert states[0][:2] == ("bad", InstanceState.DISABLED)
    assert engine.get("good").state is InstanceState.RUNNING
    assert any(i.strategy == "good" for batch in sink.batches for i in batch)


async def test_a_strategy_that_takes_too_long_is_disabled_without_blocking_the_close() -> None:
    engine, _ = await engine_with(("slow", Sleeps(window=2)), ("good", Crosses(window=2)), timeout=0.05)
    for t in range(3):
        await engine.on_bars([bar(s, t + 1, 10.0 + t) for s in SYMBOLS])
    assert engine.get("slow").state is InstanceState.DISABLED
    assert "took longer than" in (engine.get("slow").last_error or "")
    assert engine.instances["good"].decisions >= 1
    await asyncio.sleep(0.6)  # let the abandoned thread finish before the loop closes
    await engine.close()


async def test_paused_instances_keep_their_panel_but_send_nothing() -> None:
    engine, sink = await engine_with(("x", Crosses(window=2)))
    await engine.set_state("x", InstanceState.PAUSED)
    for t, price in enumerate([10.0, 9.0, 12.0]):
        await engine.on_bars([bar(s, t + 1, price) for s in SYMBOLS])
    assert sink.batches == []
    assert len(engine.panels[("1s", SYMBOLS)]) == 3
    await engine.set_state("x", InstanceState.RUNNING)
    await engine.on_bars([bar(s, 4, 8.0) for s in SYMBOLS])
    await engine.on_bars([bar(s, 5, 20.0) for s in SYMBOLS])
    assert [i.reason for batch in sink.batches for i in batch] == ["enter long"] * 3


async def test_overdue_close_is_decided_with_the_silent_symbol_carried_forward() -> None:
    engine, _sink = await engine_with(("x", Crosses(window=2)))
    await engine.on_bars([bar(s, 1, 10.0) for s in SYMBOLS])
    await engine.on_bars([bar("A", 2, 11.0), bar("B", 2, 11.0)])
    assert await engine.on_time(2 * SECOND + engine.close_grace_ns - 1) == []
    reports = await engine.on_time(2 * SECOND + engine.close_grace_ns)
    assert [r.close_ns for r in reports] == [2 * SECOND]
    assert engine.panels[("1s", SYMBOLS)].window().close["C"].tolist() == [10.0, 10.0]


async def test_instances_are_stored_validated_and_reparameterised(database: Database) -> None:
    store = InstanceStore(database.pool)
    created = InstanceSpec.create("fast-1", "sma_cross", ["X", "Y"], params={"fast": 5}, timeframe="1m", capital=5000)
    await store.add(created)
    assert (await store.get("fast-1")).params == {"fast": 5, "slow": 20, "short": False}
    with pytest.raises(ParameterError, match="exists already"):
        await store.add(created)
    with pytest.raises(ParameterError, match="slow"):
        await store.set_params("fast-1", {"slow": 10_000})
    changed = await store.set_params("fast-1", {"slow": 50})
    assert changed.params["slow"] == 50
    await store.set_state("fast-1", InstanceState.DISABLED, "boom")
    stored = await store.get("fast-1")
    assert (stored.state, stored.last_error) == (InstanceState.DISABLED, "boom")
    with pytest.raises(UnknownNameError):
        await store.get("nope")
    with pytest.raises(UnknownNameError):
        InstanceSpec.create("bad", "no_such_strategy", ["X"])
    with pytest.raises(ParameterError):
        InstanceSpec.create("bad id!", "sma_cross", ["X"])


class Slow(Crosses):
    """Decides like `Crosses`, a quarter of a second later."""

    def signals(self, data: Bars) -> Signals:
        time.sleep(0.25)
        return super().signals(data)


class TimedRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[int] = []

    async def submit_many(self, intents: Sequence[OrderIntent]) -> list[Order]:
        self.times.append(time.perf_counter_ns())
        return await super().submit_many(intents)


async def test_a_decision_is_sent_as_it_arrives_without_waiting_for_slower_instances() -> None:
    sink = TimedRecorder()
    engine = StrategyEngine(sink, PositionBook(), INSTRUMENTS, serial_sends=False)
    for id_, strategy in (("fast", Crosses(window=2)), ("slow", Slow(window=2))):
        await engine.add(spec(id_, strategy), strategy=strategy)
    reports = []
    for t, price in enumerate([10.0, 10.0, 9.0, 12.0]):
        reports += await engine.on_bars([bar(s, t + 1, price) for s in SYMBOLS])
    (last,) = [r for r in reports if r.intents]
    assert [[i.strategy for i in batch] for batch in sink.batches][-2:] == [["fast"] * 3, ["slow"] * 3]
    assert sink.times[-2] < last.signals_perf_ns["slow"]  # fast's orders went out before slow had decided
    assert last.decided == ["fast", "slow"]
    assert set(last.sent_perf_ns) == {"fast", "slow"}
    await engine.close()
