"""`Runner`: wires feed, venue, order manager, risk and strategy engine into one asyncio service.

Start-up order (each step waits for the previous one):

1. risk manager from its persisted limits and trading state;
2. venue connection (paper or ccxt);
3. order manager: load orders and fills, rebuild positions, reconcile with the venue. If the
   reconciliation fails, the account is halted with the report's reason and no strategy starts;
4. strategy engine: instances from the database (the config's are created if missing), panels
   warmed up from stored bars.

Market data path, per closed bar: the paper venue sees the bar first (orders decided on earlier
bars fill at its open), the order manager applies those fills, then the engine decides on the bar
and the intents go through the order manager (intent committed, risk checked, sent). In replay
mode bars come straight from the replay feed; in the other modes they come out of the ingestion
pipeline, which stores ticks and bars on the way.

`stop()` (SIGTERM): no new decisions, the feed closes, in-flight writes finish, open orders are
cancelled when the config says so, and everything closes in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from framework.bars import Bars
from framework.brokers.base import Broker
from framework.brokers.paper import PaperBroker
from framework.clock import Clock
from framework.data.store import read_bars
from framework.engine.instances import InstanceSpec, InstanceState, InstanceStore
from framework.engine.order_manager import OrderManager
from framework.engine.reconcile import ReconcileReport
from framework.engine.strategy_engine import CloseReport, StrategyEngine
from framework.errors import ParameterError, RejectedError
from framework.events import Bar, Tick, ns_to_datetime
from framework.execution import ExecutionModel
from framework.feeds.base import Feed
from framework.ingest.loop import FullCollections, settle_gc
from framework.instruments import Instrument
from framework.risk.gateway import RiskManager
from framework.risk.limits import RiskLimits
from framework.risk.state import TradingState
from framework.risk.store import RiskStore
from framework.timeframes import timeframe_ns
from runner.api.events import RunnerEvents
from runner.config import RunConfig
from runner.snapshots import EquitySnapshots

if TYPE_CHECKING:
    from framework.ingest.writer import CommittedTicks

__all__ = ["Runner"]

log = logging.getLogger(__name__)

_COLLECT_AFTER_CLOSE_S = 0.1


class Runner:
    """One account's live service; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        pool: asyncpg.Pool,
        feed: Feed,
        broker: Broker,
        clock: Clock,
        *,
        instruments: Sequence[Instrument] | None = None,
        spool_dir: Path | None = None,
        venue_timeframe: str | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.feed = feed
        self.broker = broker
        self.clock = clock
        self.mode = config.mode
        self.spool_dir = spool_dir
        self._instruments = {i.symbol: i for i in instruments or ()}
        self.risk: RiskManager | None = None
        self.orders: OrderManager | None = None
        self.engine: StrategyEngine | None = None
        self.reconciliation: ReconcileReport | None = None
        self.snapshots: EquitySnapshots | None = None
        self.collections = FullCollections()
        self.closes: list[CloseReport] = []
        self.keep_reports = False
        self.halted_reason = ""
        self._stopping = asyncio.Event()
        self._pipeline: Any = None
        self._venue_timeframe = venue_timeframe
        self.events = RunnerEvents(self)  # API hook: the event hub REST, WebSocket and metrics read

    @property
    def model(self) -> ExecutionModel:
        """Return the execution model the engine sizes with (the paper venue's own)."""
        section = self.config.runner
        return ExecutionModel(fill=section.fill, fees=section.fees, slippage=section.slippage, cash=section.cash)

    # -- start and stop -------------------------------------------------------------------------

    async def start(self) -> ReconcileReport:
        """Open risk, venue, order manager (reconciled) and engine; strategies start only if reconciled."""
        self.risk = await RiskManager.open(RiskStore(self.pool), self.clock)
        if self.config.risk:
            await self.risk.set_limits("*", RiskLimits.from_json(self.config.risk))
        await self.feed.connect()
        for instrument in self.feed.instruments:
            self._instruments.setdefault(instrument.symbol, instrument)
        await self.broker.connect()
        venue = self.broker.name
        self.orders = OrderManager(
            self.pool, self.broker, self.risk, self.clock, mode=self.mode, venue=venue, instruments=self._instruments
        )
        self.orders.add_order_listener(self.events.on_order)  # API hook
        self.orders.add_fill_listener(self.events.on_fill)  # API hook
        self.risk.add_listener(self.events.on_risk)  # API hook (after the order manager's: cancels run first)
        report = self.reconciliation = await self.orders.start()
        store = InstanceStore(self.pool)
        await self._create_configured(store, venue)
        self.engine = StrategyEngine(
            self.orders,
            self.orders.positions,
            self._instruments,
            model=self.model,
            store=store,
            history=self._history,
            before_decide=self.orders.idle,
            on_close=self._on_close,
            decision_timeout_s=self.config.runner.decision_timeout_s,
            close_grace_ns=int(self.config.runner.close_grace_s * 1e9),
            decide_process=self.mode.value != "replay",  # on the wall clock: off the event loop's GIL
        )
        self.engine.add_report_listener(self._on_close_report)
        self.engine.add_listener(self.events.on_state)  # API hook
        self.engine.add_report_listener(self.events.on_report)  # API hook
        specs = [s for s in await store.list() if s.venue == venue]
        if not report.ok:
            self.halted_reason = report.reason
            log.error("runner halted: %s", report.reason)
            await self.risk.set_state(TradingState.HALTED, report.reason)
            specs = [s.evolve(state=InstanceState.STOPPED) if s.state is InstanceState.RUNNING else s for s in specs]
        await self.engine.load(specs, end_ns=self.clock.now_ns())
        self.snapshots = EquitySnapshots(
            self.pool, self.orders.positions, self.risk, int(self.config.runner.snapshot_every_s * 1e9)
        )
        if self.mode.value != "replay":
            settle_gc()  # start-up's objects (pandas, vectorbt, strategies) live for good: out of the collector's walks
            self.collections.start()  # and full collections between closes, not in the middle of one
        return report

    async def _create_configured(self, store: InstanceStore, venue: str) -> None:
        existing = {s.id for s in await store.list()}
        symbols = sorted(self._instruments)
        for item in self.config.strategies:
            if item.id in existing:
                continue
            universe = symbols[: item.symbols] if isinstance(item.symbols, int) else list(item.symbols)
            unknown = [s for s in universe if s not in self._instruments]
            if unknown:
                raise ParameterError(f"strategy instance {item.id}: unknown symbol {unknown[0]!r}")
            spec = InstanceSpec.create(
                item.id,
                item.strategy,
                universe,
                params=item.params,
                venue=venue,
                timeframe=item.timeframe,
                capital=Decimal(repr(item.capital)),
            )
            await store.add(spec.evolve(state=InstanceState(item.state)))

    async def _history(self, symbols: Sequence[str], timeframe: str, before_ns: int, count: int) -> Bars | None:
        """Return the newest stored bars closing at or before `before_ns` (warm-up), or None."""
        if self.mode.value == "replay":
            return None  # a replay starts from the beginning of its history
        step = timeframe_ns(timeframe)
        end = ns_to_datetime(before_ns - step + 1)  # bars that opened before `before_ns - step` closed by then
        try:
            # The `count`-th newest bar time of the universe (the runner may have been down a while).
            start = await self.pool.fetchval(
                """
                SELECT b.open_time FROM bars b JOIN instruments i ON i.id = b.instrument_id
                WHERE i.symbol = ANY($1::text[]) AND b.timeframe = $2 AND b.open_time < $3
                GROUP BY b.open_time ORDER BY b.open_time DESC LIMIT 1 OFFSET $4
                """,
                list(symbols),
                timeframe,
                end,
                max(count - 1, 0),
            )
            if start is None:
                start = ns_to_datetime(0)
            bars = await read_bars(self.pool, list(symbols), timeframe, start, end)
            return bars.iloc[-count:] if len(bars) > count else bars
        except Exception as exc:  # noqa: BLE001 - no history is not fatal: the panel fills as bars arrive
            level = logging.INFO if isinstance(exc, RejectedError) else logging.WARNING
            log.log(level, "no warm-up history for %s %s: %s", timeframe, ",".join(symbols[:3]), exc)
            return None

    def stop(self) -> None:
        """Ask the runner to stop (safe from a signal handler)."""
        self._stopping.set()

    async def close(self) -> None:
        """Finish in-flight work and close everything in reverse order."""
        if self.engine is not None:
            await self.engine.close()
        if self.orders is not None:
            await self.orders.close(cancel_open=self.config.runner.cancel_on_shutdown)
        if self.snapshots is not None:
            await self.snapshots.flush(self.clock.now_ns(), force=True)
        if self.risk is not None:
            await self.risk.close()
        with contextlib.suppress(Exception):
            await self.feed.close()
        await self.broker.close()
        self.collections.stop()

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Trade until the feed ends or `stop()`; then close."""
        try:
            if self.mode.value == "replay":
                await self._run_replay()
            else:
                await self._run_ingesting()
        finally:
            await self.close()

    async def _run_replay(self) -> None:
        async for event in self.feed.events():
            if self._stopping.is_set():
                break
            if isinstance(event, Bar):
                await self.on_bars([event])
            elif isinstance(event, Tick):
                await self.on_tick(event)

    async def _run_ingesting(self) -> None:
        from framework.ingest import IngestPipeline

        closed: asyncio.Queue[list[Bar]] = asyncio.Queue()
        section = self.config.runner
        pipeline = self._pipeline = IngestPipeline(
            self.feed,
            self.pool,
            list(self._instruments.values()),
            self.clock,
            spool=self.spool_dir or Path(".rata/spool"),
            bar_close_delay_ns=int(section.bar_close_delay_s * 1e9),
            bar_timer_ms=10.0,
            on_bars=closed.put_nowait,
            on_ticks=self._on_committed_ticks,
            on_opens=self.broker.on_opens if isinstance(self.broker, PaperBroker) else None,
        )
        if isinstance(self.broker, PaperBroker):  # market orders fill as soon as their bar's open is known
            aggregator, timeframe = pipeline.aggregator, self.venue_timeframe
            self.broker.opens = lambda symbol: aggregator.forming(symbol, timeframe)
        running = asyncio.create_task(pipeline.run(), name="rata-ingest")
        deciding = asyncio.create_task(self._decide_from(closed), name="rata-decide")
        stopping = asyncio.create_task(self._stopping.wait(), name="rata-stop")
        timer = asyncio.create_task(self._close_timer(), name="rata-close-timer")
        try:
            await asyncio.wait({running, stopping, deciding}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if isinstance(self.broker, PaperBroker):
                self.broker.opens = None
            if not running.done():
                await pipeline.stop()
            await running
            stopping.cancel()
            deciding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deciding
            if deciding.done() and not deciding.cancelled() and deciding.exception() is not None:
                raise deciding.exception()  # type: ignore[misc]

    async def _decide_from(self, closed: asyncio.Queue[list[Bar]]) -> None:
        """Hand closed bars to the engine, in order, apart from the ingestion loop."""
        while True:
            bars = await closed.get()
            while not closed.empty():  # catch up: one engine call for everything already closed
                bars = bars + closed.get_nowait()
            await self.on_bars(bars)

    async def _close_timer(self) -> None:
        """Decide closes whose bars are late (quiet symbols), on the clock; collect garbage if no close did."""
        while True:
            await asyncio.sleep(0.05)
            if self.engine is not None:
                await self.engine.on_time(self.clock.now_ns())
            self.collections.collect_if_overdue()

    async def on_tick(self, tick: Tick) -> None:
        """Feed a trade to the venue (when it fills on ticks) and to the risk context."""
        self.events.on_tick(tick)  # API hook
        if self.orders is not None:
            self.orders.on_price(tick.symbol, Decimal(repr(tick.price)), tick.time_ns)
        if isinstance(self.broker, PaperBroker) and self.broker.fill_on_ticks:
            self.broker.on_tick(tick)

    def _on_committed_ticks(self, committed: CommittedTicks) -> None:
        """Trades the ingestion pipeline just committed (dev, paper, live): WebSocket clients and metrics."""
        self.events.on_committed_ticks(committed)  # API hook

    async def on_bars(self, bars: Sequence[Bar]) -> None:
        """Closed bars (from the replay feed or the ingestion pipeline) go to the engine, by close."""
        self.events.on_bars(bars)  # API hook
        if bars and self.engine is not None:
            await self.engine.on_bars(bars)

    @property
    def pipeline(self) -> Any:
        """Return the ingestion pipeline while one runs (dev, paper, live), else None (API hook: metrics)."""
        return self._pipeline

    @property
    def venue_timeframe(self) -> str:
        """Return the bar timeframe the paper venue fills on: the finest one the runner sees."""
        if self._venue_timeframe is None:
            timeframes = {s.timeframe for s in self.config.strategies} | {self.config.feed.timeframe}
            if self.mode.value != "replay":
                timeframes.add("1s")
            self._venue_timeframe = min(timeframes, key=timeframe_ns)
        return self._venue_timeframe

    async def _on_close(self, timeframe: str, close_ns: int, bars: list[Bar]) -> None:
        """Every symbol's bar of one close, before any decision on it: the venue, marks, snapshots."""
        if self.orders is None:
            return
        if timeframe == self.venue_timeframe:
            if isinstance(self.broker, PaperBroker):
                self.broker.on_bars(bars)
            for bar in bars:
                price = Decimal(repr(bar.close))
                self.orders.on_price(bar.symbol, price, close_ns)
                if self.snapshots is not None:
                    self.snapshots.mark(bar.symbol, price)
            await self.orders.idle()
            if self.snapshots is not None and self.engine is not None:
                await self.snapshots.flush(close_ns, specs=[r.spec for r in self.engine.instances.values()])

    def _on_close_report(self, report: CloseReport) -> None:
        if self.keep_reports:
            self.closes.append(report)
        # The close's orders are answered: a full collection due now pauses nothing that waits.
        # A moment later, so that the other report listeners and the close's tasks finish first.
        if self.collections.active:  # not in replays, which leave the collector its own schedule
            asyncio.get_running_loop().call_later(_COLLECT_AFTER_CLOSE_S, self.collections.collect_if_due)
