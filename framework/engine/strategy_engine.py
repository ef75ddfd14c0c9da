"""`StrategyEngine`: runs many strategy instances, each deciding at the close of its timeframe's bars.

At every bar close the engine appends the closed bars to one rolling panel per (timeframe,
universe) — instances over the same universe share the panel, so the memoised indicators of
`framework.indicators` are computed once for all of them — calls each running instance's
`decide()` (the very call the backtest makes) on a window of at least `warmup + 1` bars, turns the
last row into order intents (`framework.engine.sizing`) and hands every intent of that close to
the order sink in one call.

A strategy that raises, returns something malformed, or runs longer than `decision_timeout_s`
is disabled with the error recorded in its row and reported to listeners; the others go on. A
timed-out call cannot be interrupted (Python threads cannot be killed): its thread finishes in
the background and its result is dropped.

Where the calls run: in a thread pool by default; with `decide_process=True` (the live runner), in
a worker process (`DecideProcess`), so that pandas' GIL-bound work does not stall the event loop
that ingests and trades, and falls back to the threads while the worker starts, for strategies it
cannot take (classes defined in a notebook), and for what a stuck worker left unanswered.

Bars of one close may arrive one symbol at a time (live) or all at once (replay): a close is
decided when every symbol of the timeframe has its bar, or when `on_time(now)` finds the close
older than `close_grace_ns` (symbols without a bar are carried forward by the panel).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from framework.bars import Bars
from framework.engine.decide_process import DecideProcess, Outcome, PanelWindow
from framework.engine.instances import InstanceSpec, InstanceState, InstanceStore
from framework.engine.intents import OrderIntent
from framework.engine.panel import RollingPanel
from framework.engine.sizing import PositionSource, SizingContext, signal_intents, weight_intents
from framework.errors import StrategyError, UnknownNameError
from framework.events import Bar
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import Order
from framework.strategy import DecisionArrays, Strategy
from framework.timeframes import timeframe_ns

__all__ = ["CloseReport", "HistoryLoader", "IntentSink", "StrategyEngine"]

log = logging.getLogger(__name__)

HistoryLoader = Callable[[Sequence[str], str, int, int], Awaitable[Bars | None]]
"""`(symbols, timeframe, before_close_ns, count)` -> the newest `count` bars closing at or before."""


class IntentSink(Protocol):
    """Where intents go (the order manager)."""

    async def submit_many(self, intents: Sequence[OrderIntent]) -> list[Order]:
        """Commit, risk-check and send every intent; return the orders."""
        ...


@dataclass
class _Running:
    spec: InstanceSpec
    strategy: Strategy
    warmup: int
    decisions: int = 0
    last_decision_ns: int = 0


@dataclass
class CloseReport:
    """What one bar close did: the decisions, the intents and how long each step took.

    Times are `perf_counter_ns` values: `started_perf_ns` when the close was complete,
    `signals_perf_ns[instance]` when its `signals()` returned, `submitted_perf_ns` when the first
    instance's intents went to the order manager, `sent_perf_ns[instance]` when its orders were
    answered (each instance's intents are sent as soon as they are sized).
    """

    timeframe: str
    close_ns: int
    decided: list[str] = field(default_factory=list)
    intents: list[OrderIntent] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    disabled: list[tuple[str, str]] = field(default_factory=list)
    started_perf_ns: int = 0
    signals_perf_ns: dict[str, int] = field(default_factory=dict)
    submitted_perf_ns: int = 0
    sent_perf_ns: dict[str, int] = field(default_factory=dict)


class StrategyEngine:
    """Decide every running instance at each close of its timeframe and send the intents to `sink`.

    `book` gives positions (the order manager's `PositionBook`); `instruments` the lot sizes;
    `model` the sizing rules (its `fees` and `slippage` should be the venue's). `store` persists
    state changes (optional for tests and parity runs). `on_close(timeframe, close_ns, bars)` is
    awaited first at every close with all of its bars (the runner feeds the paper venue there, all
    symbols at once, so sells free cash before buys spend it as in vectorbt), then `before_decide`
    before the decisions (the runner lets the venue's fills of that bar settle).

    Decisions go to `sink` as soon as they are sized, those that arrived together in one
    `submit_many`; `serial_sends` (the default without a decide process, i.e. replays and tests)
    waits for each call before the next, live runners let them overlap.
    """

    def __init__(
        self,
        sink: IntentSink,
        book: PositionSource,
        instruments: Mapping[str, Instrument],
        *,
        model: ExecutionModel | None = None,
        store: InstanceStore | None = None,
        history: HistoryLoader | None = None,
        before_decide: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[str, int, list[Bar]], Awaitable[None]] | None = None,
        decision_timeout_s: float = 5.0,
        close_grace_ns: int = 2_000_000_000,
        headroom: float = 1.5,
        workers: int = 4,
        decide_process: bool = False,
        serial_sends: bool | None = None,
    ) -> None:
        self.sink = sink
        self.book = book
        self.instruments = dict(instruments)
        self.model = model or ExecutionModel()
        self.store = store
        self.history = history
        self.before_decide = before_decide
        self.on_close = on_close
        self.decision_timeout_s = decision_timeout_s
        self.close_grace_ns = close_grace_ns
        self.headroom = headroom
        self.instances: dict[str, _Running] = {}
        self.panels: dict[tuple[str, tuple[str, ...]], RollingPanel] = {}
        self._pending: dict[str, dict[int, dict[str, Bar]]] = {}
        self._listeners: list[Callable[[str, InstanceState, str | None], Awaitable[None]]] = []
        self._report_listeners: list[Callable[[CloseReport], None]] = []
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rata-decide")
        self._process = DecideProcess() if decide_process else None
        self.serial_sends = not decide_process if serial_sends is None else serial_sends
        self._lock = asyncio.Lock()

    # -- instances ---------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[str, InstanceState, str | None], Awaitable[None]]) -> None:
        """Await `listener(instance_id, state, error)` on every state change."""
        self._listeners.append(listener)

    def add_report_listener(self, listener: Callable[[CloseReport], None]) -> None:
        """Call `listener(report)` after every decided close (metrics, benchmarks)."""
        self._report_listeners.append(listener)

    async def load(self, specs: Iterable[InstanceSpec], end_ns: int | None = None) -> None:
        """Register instances (their panels warmed up from history when a loader is given)."""
        for spec in specs:
            await self.add(spec, end_ns=end_ns)

    async def add(self, spec: InstanceSpec, *, strategy: Strategy | None = None, end_ns: int | None = None) -> None:
        """Register one instance; its state is taken from the spec.

        `strategy` is the built strategy object when its class is not in the `strategies` package
        (one defined in a notebook or a test); by default the spec builds it from the registry.
        """
        strategy = strategy if strategy is not None else spec.build()
        missing = [s for s in spec.symbols if s not in self.instruments]
        if missing:
            raise UnknownNameError("instrument", missing[0], sorted(self.instruments))
        running = _Running(spec, strategy, strategy.warmup_bars())
        self.instances[spec.id] = running
        await self._ensure_panel(spec, running.warmup + 2, end_ns)

    def get(self, instance_id: str) -> InstanceSpec:
        """Return an instance's spec (with its current state)."""
        return self._running(instance_id).spec

    async def set_state(self, instance_id: str, state: InstanceState, error: str | None = None) -> None:
        """Start, stop, pause or disable an instance (persisted when a store is set)."""
        running = self._running(instance_id)
        if state is InstanceState.RUNNING and running.spec.state is InstanceState.DISABLED and error is None:
            log.info("re-enabling strategy instance %s", instance_id)
        running.spec = running.spec.evolve(
            state=state, last_error=error if error is not None else running.spec.last_error
        )
        if self.store is not None:
            await self.store.set_state(instance_id, state, error)
        for listener in self._listeners:
            await listener(instance_id, state, error)

    async def set_params(self, instance_id: str, params: Mapping[str, Any]) -> InstanceSpec:
        """Change parameters at run time (validated by the class's declarations)."""
        running = self._running(instance_id)
        if self.store is not None:
            spec = await self.store.set_params(instance_id, dict(params))
            spec = spec.evolve(state=running.spec.state)
        else:
            built = running.spec.evolve(params={**running.spec.params, **params}).build()
            spec = running.spec.evolve(params=dict(built.values))
        strategy = spec.build()
        running.spec, running.strategy, running.warmup = spec, strategy, strategy.warmup_bars()
        await self._ensure_panel(spec, running.warmup + 2, None)
        return spec

    def _running(self, instance_id: str) -> _Running:
        running = self.instances.get(instance_id)
        if running is None:
            raise UnknownNameError("strategy instance", instance_id, sorted(self.instances))
        return running

    async def _ensure_panel(self, spec: InstanceSpec, rows: int, end_ns: int | None) -> None:
        key = (spec.timeframe, spec.symbols)
        panel = self.panels.get(key)
        if panel is not None and panel.capacity >= rows:
            return
        capacity = max(rows, 2 * (panel.capacity if panel else 0), 32)
        fresh = RollingPanel(spec.symbols, capacity, instruments=self.instruments, timeframe=spec.timeframe)
        last = panel.last_time_ns if panel is not None else end_ns
        if self.history is not None and last is not None:
            bars = await self.history(spec.symbols, spec.timeframe, last, capacity)
            if bars is not None and len(bars):
                fresh.append_frame(bars)
        elif panel is not None and len(panel):
            fresh.append_frame(panel.window())
        self.panels[key] = fresh

    # -- bars --------------------------------------------------------------------------------

    async def on_bars(self, bars: Iterable[Bar], close_ns: int | None = None) -> list[CloseReport]:
        """Take closed bars; decide every close that is complete. `close_ns` defaults to open + length."""
        reports: list[CloseReport] = []
        touched: set[str] = set()
        for bar in bars:
            closes = self._pending.setdefault(bar.timeframe, {})
            at = close_ns if close_ns is not None else bar.open_ns + timeframe_ns(bar.timeframe)
            closes.setdefault(at, {})[bar.symbol] = bar
            touched.add(bar.timeframe)
        for timeframe in sorted(touched):
            reports.extend(await self._decide_ready(timeframe, None))
        return reports

    async def on_time(self, now_ns: int) -> list[CloseReport]:
        """Decide the closes older than the grace period even if some symbols sent no bar."""
        reports: list[CloseReport] = []
        for timeframe in list(self._pending):
            reports.extend(await self._decide_ready(timeframe, now_ns - self.close_grace_ns))
        return reports

    def _universe(self, timeframe: str) -> set[str]:
        return {s for (tf, symbols) in self.panels if tf == timeframe for s in symbols}

    async def _decide_ready(self, timeframe: str, overdue_before_ns: int | None) -> list[CloseReport]:
        closes = self._pending.get(timeframe, {})
        universe = self._universe(timeframe)
        reports = []
        for at in sorted(closes):
            received = closes.get(at)
            if received is None:  # decided meanwhile by another caller (the close timer)
                continue
            complete = universe.issubset(received)
            later = any(t > at for t in closes)
            overdue = overdue_before_ns is not None and at <= overdue_before_ns
            if not (complete or later or overdue):
                break
            closes.pop(at, None)
            reports.append(await self._decide_close(timeframe, at, received))
        return reports

    async def _decide_close(self, timeframe: str, close_ns: int, bars: Mapping[str, Bar]) -> CloseReport:
        async with self._lock:
            report = CloseReport(timeframe, close_ns, started_perf_ns=time.perf_counter_ns())
            groups = [(key, p) for key, p in self.panels.items() if key[0] == timeframe]
            for _, panel in groups:
                last = panel.last_time_ns
                if last is None or close_ns > last:
                    panel.append(close_ns, [bars[s] for s in panel.symbols if s in bars])
            jobs = self._jobs(timeframe, close_ns)
            # Signals depend on the bars only, so they are computed while the venue's fills of this
            # bar are applied; sizing, which reads the positions those fills leave, waits for them.
            # Decisions are then sized and sent as they arrive, not after all of them.
            arrived: asyncio.Queue[tuple[int, Outcome, int] | None] = asyncio.Queue()
            deciding = asyncio.create_task(self._decide_all(jobs, arrived.put_nowait)) if jobs else None
            sends: list[asyncio.Task[list[tuple[int, list[Order]]]]] = []
            try:
                await asyncio.sleep(0)  # the jobs reach the worker before the venue's fills take the loop
                if self.on_close is not None:
                    await self.on_close(timeframe, close_ns, list(bars.values()))
                if deciding is None:
                    return report
                if self.before_decide is not None:
                    await self.before_decide()
                intents = await self._act_on_arrivals(report, jobs, arrived, sends, close_ns)
                await deciding  # raises what the deciding raised
                sent = dict(pair for done in await asyncio.gather(*sends) for pair in done)
            except BaseException:
                if deciding is not None:
                    deciding.cancel()
                raise
            # Acted on and sent in the jobs' order (`_act_on_arrivals`): the dicts are in that order.
            report.decided = [jobs[k][0].spec.id for k in intents]
            report.intents = [i for sized in intents.values() for i in sized]
            report.orders = [o for orders in sent.values() for o in orders]
            for listener in self._report_listeners:
                listener(report)
            return report

    async def _act_on_arrivals(
        self,
        report: CloseReport,
        jobs: Sequence[tuple[_Running, RollingPanel, int]],
        arrived: asyncio.Queue[tuple[int, Outcome, int] | None],
        sends: list[asyncio.Task[list[tuple[int, list[Order]]]]],
        close_ns: int,
    ) -> dict[int, list[OrderIntent]]:
        """Size the decisions as they arrive and send them at once; return the intents by job.

        Whatever has arrived by the time the loop gets to it goes to the sink in one `submit_many`
        (one intent statement, one venue call): a decision that arrives alone is sent alone, at
        once; forty that arrived while the bar's fills were being applied go out together, which
        costs far less than forty calls. Decisions are acted on in the jobs' order (an answer that
        overtakes an earlier one waits for it: the worker process answers in order anyway, threads
        may not), so orders start out in the same sequence on every path. With `serial_sends`
        (replay), a send also finishes before the next starts, so the venue accepts them in that
        order too and a replay is repeatable to the order; live, they overlap.
        """
        intents: dict[int, list[OrderIntent]] = {}
        early: dict[int, tuple[Outcome, int]] = {}
        turn, finished = 0, False
        while not finished:
            items = [await arrived.get()]
            while not arrived.empty():
                items.append(arrived.get_nowait())
            for item in items:
                if item is None:
                    finished = True
                else:
                    early[item[0]] = item[1:]
            batch: list[tuple[int, list[OrderIntent]]] = []
            while turn in early:
                k, (result, signalled_ns) = turn, early.pop(turn)
                turn += 1
                sized = await self._size(report, jobs[k], result, signalled_ns, close_ns)
                if sized is not None:
                    intents[k] = sized
                    if sized:
                        batch.append((k, sized))
            if batch:
                report.submitted_perf_ns = report.submitted_perf_ns or time.perf_counter_ns()
                sends.append(asyncio.create_task(self._send(report, jobs, batch)))
                if self.serial_sends:
                    await asyncio.wait([sends[-1]])
        return intents

    async def _size(
        self,
        report: CloseReport,
        job: tuple[_Running, RollingPanel, int],
        result: Outcome,
        signalled_ns: int,
        close_ns: int,
    ) -> list[OrderIntent] | None:
        """Return one decision's intents (None if the instance stopped meanwhile or failed: it is then disabled)."""
        running, panel, _ = job
        if running.spec.state is not InstanceState.RUNNING:  # stopped meanwhile
            return None
        if isinstance(result, str):
            report.disabled.append((running.spec.id, result))
            await self.set_state(running.spec.id, InstanceState.DISABLED, result)
            return None
        report.signals_perf_ns[running.spec.id] = signalled_ns
        running.decisions += 1
        running.last_decision_ns = close_ns
        return self._intents(running, panel, result, close_ns)

    async def _send(
        self,
        report: CloseReport,
        jobs: Sequence[tuple[_Running, RollingPanel, int]],
        batch: Sequence[tuple[int, list[OrderIntent]]],
    ) -> list[tuple[int, list[Order]]]:
        """Send a batch of decisions' intents in one call; return each job's orders."""
        orders = await self.sink.submit_many([i for _, sized in batch for i in sized])
        answered = time.perf_counter_ns()
        out, start = [], 0
        for k, sized in batch:
            out.append((k, orders[start : start + len(sized)]))
            start += len(sized)
            report.sent_perf_ns[jobs[k][0].spec.id] = answered
        return out

    def _jobs(self, timeframe: str, close_ns: int) -> list[tuple[_Running, RollingPanel, int]]:
        """Return the running instances of `timeframe` with enough bars, each with its panel and window length."""
        ready: list[tuple[_Running, tuple[str, tuple[str, ...]]]] = []
        rows: dict[tuple[str, tuple[str, ...]], int] = {}
        for running in self.instances.values():
            if running.spec.timeframe != timeframe or running.spec.state is not InstanceState.RUNNING:
                continue
            key = (timeframe, running.spec.symbols)
            panel = self.panels[key]
            if len(panel) < running.warmup + 1 or panel.last_time_ns != close_ns:
                continue
            ready.append((running, key))
            rows[key] = max(rows.get(key, 0), running.warmup + 2)
        # One window per panel, as long as its longest warm-up needs (the contract: `signals()` on
        # `warmup + 1` bars decides the last bar as on the whole history), not the panel's capacity,
        # which grows by doubling: the indicators' work is proportional to the rows.
        return [(running, self.panels[key], rows[key]) for running, key in ready]

    async def _decide_all(
        self,
        jobs: Sequence[tuple[_Running, RollingPanel, int]],
        arrived: Callable[[tuple[int, Outcome, int] | None], None],
    ) -> None:
        """Hand `arrived((job index, decision or error, when its signals() returned))` each job's outcome as it comes.

        In the worker process when there is one, else (and for what it leaves) in threads; the
        times are `perf_counter_ns` values. `arrived(None)` follows the last one (also on error).
        """
        try:
            index = {r.spec.id: k for k, (r, _, _) in enumerate(jobs)}
            answered: set[str] = set()
            if self._process is not None:
                by_window: dict[int, tuple[PanelWindow, list[tuple[str, Strategy]]]] = {}
                for running, panel, length in jobs:
                    group = by_window.setdefault(panel.token, (PanelWindow(panel, length), []))
                    group[1].append((running.spec.id, running.strategy))

                def tell(instance_id: str, outcome: Outcome, finished_ns: int) -> None:
                    if isinstance(outcome, str):
                        log.error("strategy instance %s disabled: %s", instance_id, outcome)
                    answered.add(instance_id)
                    arrived((index[instance_id], outcome, finished_ns))

                for window, strategies in by_window.values():
                    await self._process.decide(window, strategies, self.decision_timeout_s, on_outcome=tell)
            rest = [(k, r, p, n) for k, (r, p, n) in enumerate(jobs) if r.spec.id not in answered]
            windows: dict[int, Bars] = {}  # built once per panel, and only for what the threads decide
            for _, _, panel, length in rest:
                if panel.token not in windows:
                    windows[panel.token] = panel.window(length)

            async def one(k: int, running: _Running, panel: RollingPanel) -> None:
                outcome, finished_ns = await self._decide_one(running, windows[panel.token])
                arrived((k, outcome, finished_ns))

            await asyncio.gather(*(one(k, r, p) for k, r, p, _ in rest))
        finally:
            arrived(None)

    async def _decide_one(self, running: _Running, window: Bars) -> tuple[Outcome, int]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, _timed, running.strategy, window)
        try:
            async with asyncio.timeout(self.decision_timeout_s):  # not wait_for: 3.11's can lose a cancellation
                return await future
        except TimeoutError:
            error = f"{running.strategy.name}.signals() took longer than {self.decision_timeout_s:g} s"
        except StrategyError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken strategy must never stop the runner
            error = f"{running.strategy.name}: {type(exc).__name__}: {exc}"
        log.error("strategy instance %s disabled: %s", running.spec.id, error)
        return error, time.perf_counter_ns()

    def _intents(
        self, running: _Running, panel: RollingPanel, decision: DecisionArrays, close_ns: int
    ) -> list[OrderIntent]:
        spec = running.spec
        ctx = SizingContext(
            instance=spec.id,
            venue=spec.venue,
            capital=Decimal(spec.capital),
            symbols=spec.symbols,
            instruments=self.instruments,
            closes=panel.last_closes(),
            book=self.book,
            model=self.model,
            decision_ns=close_ns,
            headroom=self.headroom,
            columns=panel.column,
        )
        if decision.kind == "weights":
            return weight_intents(ctx, decision)
        return signal_intents(ctx, decision)

    async def close(self) -> None:
        """Stop deciding; let running decisions finish in the background (the worker process is stopped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._process is not None:
            self._process.close()


def _timed(strategy: Strategy, window: Bars) -> tuple[DecisionArrays, int]:
    """Return `strategy`'s decision on `window` and when it returned (`perf_counter_ns`)."""
    decision = strategy.decide_arrays(window)
    return decision, time.perf_counter_ns()
