"""Strategy instances deciding in a worker process: the in-process decisions, errors and stuck calls isolated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Signals, Strategy
from framework.engine.decide_process import DecideProcess, PanelWindow
from framework.engine.panel import RollingPanel
from framework.engine.strategy_engine import StrategyEngine
from framework.orders.positions import PositionBook
from framework.strategy import DecisionArrays
from tests.engine.test_strategy_engine import INSTRUMENTS, SECOND, Crosses, Raises, Recorder, Sleeps, bar, spec

PRICES = {"A": [10, 10, 10, 9, 12, 13], "B": [5, 5, 5, 5, 5, 5], "C": [7, 7, 7, 6, 5, 4]}


def panel() -> Bars:
    frame = pd.DataFrame(PRICES, index=pd.date_range("2024-01-01", periods=6, freq="1s", tz="UTC"), dtype=float)
    return Bars(frame, frame, frame, frame, frame * 0 + 1)


async def started(process: DecideProcess) -> DecideProcess:
    for _ in range(600):  # the worker imports pandas and the framework first
        if process.ready:
            return process
        await asyncio.sleep(0.05)
    raise AssertionError("the decide worker never became ready")


@pytest.fixture
async def worker() -> AsyncIterator[DecideProcess]:
    process = await started(DecideProcess())
    yield process
    process.close()


async def test_the_worker_returns_the_in_process_decisions_last_row_and_isolates_errors(worker: DecideProcess) -> None:
    data = panel()
    strategies: list[tuple[str, Strategy]] = [("x", Crosses(window=3)), ("bad", Raises(window=3)), ("y", Crosses())]
    outcomes, left = await worker.decide(data, strategies, 5.0)
    assert left == []
    for instance_id, strategy in (("x", strategies[0][1]), ("y", strategies[2][1])):
        decision, _ = outcomes[instance_id]
        assert isinstance(decision, DecisionArrays)
        expected = strategy.decide_arrays(data)
        assert decision.kind == expected.kind
        for name, values in expected.arrays.items():
            assert np.array_equal(decision.arrays[name], values[-1:])
    error, _ = outcomes["bad"]
    assert isinstance(error, str)
    assert "ZeroDivisionError" in error
    assert "boom" in error


async def test_a_call_past_the_timeout_is_reported_and_the_worker_restarted(worker: DecideProcess) -> None:
    outcomes, left = await worker.decide(panel(), [("slow", Sleeps()), ("after", Crosses())], 0.2)
    assert outcomes["slow"][0] == "sleeps.signals() took longer than 0.2 s"
    assert left == ["after"]  # never answered: the caller decides it
    await started(worker)
    outcomes, left = await worker.decide(panel(), [("again", Crosses())], 5.0)
    assert left == []
    assert isinstance(outcomes["again"][0], DecisionArrays)


async def test_a_strategy_the_worker_cannot_import_is_left_to_the_caller(worker: DecideProcess) -> None:
    class Local(Crosses):
        def signals(self, data: Bars) -> Signals:
            return super().signals(data)

    outcomes, left = await worker.decide(panel(), [("local", Local()), ("x", Crosses())], 5.0)
    assert left == ["local"]
    assert set(outcomes) == {"x"}


async def test_an_engine_deciding_in_a_process_sends_what_one_deciding_in_threads_sends() -> None:
    intents = []
    for in_process in (False, True):
        sink = Recorder()
        engine = StrategyEngine(sink, PositionBook(), INSTRUMENTS, decide_process=in_process)
        if engine._process is not None:
            await started(engine._process)
        for id_, strategy in (("x", Crosses(window=3)), ("y", Crosses(window=2))):
            await engine.add(spec(id_, strategy), strategy=strategy)
        for t in range(6):
            await engine.on_bars([bar(s, t + 1, float(PRICES[s][t])) for s in ("A", "B", "C")])
        await engine.close()
        intents.append([i for batch in sink.batches for i in batch])
    assert intents[0] == intents[1]
    assert intents[0]  # the scenario trades


async def test_the_worker_keeps_a_copy_of_the_panel_and_gets_only_the_new_rows(worker: DecideProcess) -> None:
    """After the first job a close sends one row; a restarted worker and a replacing panel get it whole."""
    sent: list[tuple[str, int]] = []
    message_of = worker._window_message

    def recorded(window: Bars | PanelWindow) -> object:
        message = message_of(window)
        update = message[3]  # type: ignore[index]
        sent.append((update[0], len(update[-2])))
        return message

    worker._window_message = recorded  # type: ignore[method-assign]
    strategy = Crosses(window=2)
    rolling = RollingPanel(["A", "B", "C"], 4, timeframe="1s")

    async def decide_next(t: int, panel: RollingPanel) -> None:
        panel.append(t * SECOND, [bar(s, t, float(PRICES[s][t % 6]) + t) for s in ("A", "B", "C")])
        if len(panel) < 3:
            return
        outcomes, left = await worker.decide(PanelWindow(panel, 3), [("x", strategy)], 5.0)
        assert left == []
        decision, _ = outcomes["x"]
        assert isinstance(decision, DecisionArrays)
        expected = strategy.decide_arrays(panel.window(3))
        for name, values in expected.arrays.items():
            assert np.array_equal(decision.arrays[name], values[-1:]), (t, name)

    for t in range(1, 9):
        await decide_next(t, rolling)
    assert sent == [("whole", 3)] + [("rows", 1)] * 5
    worker._restart("a test restarts it")
    await started(worker)
    await decide_next(9, rolling)
    assert sent[-1] == ("whole", 4)  # the new worker has nothing: the panel's kept rows
    wider = RollingPanel(["A", "B", "C"], 8, timeframe="1s")  # as when a warm-up grows past the capacity
    wider.append_rows(*rolling.kept_rows())
    for t in range(10, 13):
        await decide_next(t, wider)
    assert sent[-3:] == [("whole", 5), ("rows", 1), ("rows", 1)]
