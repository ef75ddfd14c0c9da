"""`RunnerEvents`: what the runner publishes to; it feeds the WebSocket hub and the order metrics.

The runner holds one (`runner.events`) and calls its hooks from its own paths: `on_bars` and
`on_tick` with market data (and `on_committed_ticks`, the ingestion writer's hook, in dev, paper and
live modes), and the listeners it registers at start: `on_order` and `on_fill`
(order manager), `on_state` and `on_report` (strategy engine), `on_risk` (risk manager). Every hook
is cheap when nobody listens: a payload is built only when a WebSocket client subscribes to its
channel, and publishing never waits (see `runner.api.hub`).

Orders: `on_order(before, after)` runs inside the order path, so it only appends the change to a
list; the list is encoded, published and counted right after, in a callback of the event loop
(every state of every order, in order). Once `prime()` is called (the API does it after the start,
so orders loaded and reconciled at start are not counted as updates), each status change counts
once in `rata_orders_total`, and a risk rejection in `rata_risk_refusals_total` by its rule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from framework.engine.instances import InstanceSpec, InstanceState
from framework.engine.strategy_engine import CloseReport
from framework.events import Bar, Tick, ns_to_datetime
from framework.orders.model import Fill, Order, OrderStatus
from framework.orders.positions import Position
from framework.risk.state import StateChange
from runner.api.convert import bar_out, fill_out, instance_out, order_out, position_out, risk_event, tick_out
from runner.api.hub import WILDCARD, EventHub, bar_keys, tick_keys
from runner.api.schemas import RiskEventOut, TickOut

if TYPE_CHECKING:
    from framework.ingest.writer import CommittedTicks
    from runner.metrics import RunnerMetrics
    from runner.service import Runner

__all__ = ["RunnerEvents"]

log = logging.getLogger(__name__)

_RISK_PREFIX = "risk "


class RunnerEvents:
    """The runner's event hooks, publishing to `hub` and counting into `metrics`; see the module docstring."""

    def __init__(self, runner: Runner | None = None, hub: EventHub | None = None) -> None:
        self.runner = runner
        self.hub = hub if hub is not None else EventHub()
        self.metrics: RunnerMetrics | None = None
        self._changes: list[tuple[Order | None, Order]] = []
        self._counting = False

    def attach_metrics(self, metrics: RunnerMetrics) -> None:
        """Count order updates, refusals, trading states and decision latencies into `metrics`."""
        self.metrics = metrics

    # -- market data ----------------------------------------------------------------------------

    def on_bars(self, bars: Sequence[Bar]) -> None:
        """Publish closed bars to `bars:<symbol>:<timeframe>` subscribers."""
        hub = self.hub
        for bar in bars:
            keys = bar_keys(bar.symbol, bar.timeframe)
            if hub.wants(keys):
                hub.publish(keys, None, encoded=bar_out(bar).model_dump_json())

    def on_tick(self, tick: Tick) -> None:
        """Publish a trade to `ticks:<symbol>` subscribers."""
        keys = tick_keys(tick.symbol)
        if self.hub.wants(keys):
            self.hub.publish(keys, None, encoded=tick_out(tick).model_dump_json())

    def on_committed_ticks(self, committed: CommittedTicks) -> None:
        """Ingestion writer hook: count the trades' tick-to-commit latencies, publish them to `ticks:<symbol>`.

        Called once per commit (thousands of trades a second): a trade is encoded only when a
        client subscribes to its symbol (or to `ticks:*`).
        """
        if self.metrics is not None and committed.latency_ns.size:
            self.metrics.tick_to_commit.observe_many(committed.latency_ns / 1e9)
        wanted = self.hub.subscribed("ticks")
        if not wanted:
            return
        every = WILDCARD in wanted
        publish = self.hub.publish
        for batch in committed.batches:
            for i, symbol in enumerate(batch.symbols):
                if every or symbol in wanted:
                    out = TickOut(
                        venue=batch.venue,
                        symbol=symbol,
                        time=ns_to_datetime(int(batch.time_ns[i])),
                        trade_id=batch.trade_ids[i],
                        price=float(batch.price[i]),
                        size=float(batch.size[i]),
                        side=int(batch.side[i]),
                    )
                    publish(tick_keys(symbol), None, encoded=out.model_dump_json())
        for tick in committed.ticks:
            self.on_tick(tick)

    # -- listeners ------------------------------------------------------------------------------

    async def on_fill(self, fill: Fill, position: Position) -> None:
        """Order manager fill listener: publish the fill and the position it leaves."""
        if self.hub.wants("fills"):
            self.hub.publish("fills", None, encoded=fill_out(fill).model_dump_json())
        if self.hub.wants("positions"):
            out = position_out(position, self.mark(position.symbol))
            self.hub.publish("positions", None, encoded=out.model_dump_json())

    async def on_state(self, instance_id: str, state: InstanceState, error: str | None) -> None:
        """Strategy engine state listener: publish the instance's new state."""
        runner = self.runner
        if runner is not None and runner.engine is not None and instance_id in runner.engine.instances:
            self.publish_instance(runner.engine.get(instance_id))

    def publish_instance(self, spec: InstanceSpec) -> None:
        """Publish a strategy instance (created, started, stopped, re-parameterised...)."""
        if not self.hub.wants("strategies"):
            return
        decisions, last = 0, 0
        runner = self.runner
        if runner is not None and runner.engine is not None and spec.id in runner.engine.instances:
            running = runner.engine.instances[spec.id]
            decisions, last = running.decisions, running.last_decision_ns
        self.hub.publish("strategies", None, encoded=instance_out(spec, decisions, last).model_dump_json())

    def on_report(self, report: CloseReport) -> None:
        """Strategy engine report listener: decision latencies."""
        if report.orders:
            self._observe_latency(report)

    async def on_risk(self, change: StateChange) -> None:
        """Risk listener (after the order manager's, so the kill switch's cancels are done): publish it."""
        if self.metrics is not None:
            self.metrics.set_trading_state(change.scope, change.state.value)
        if self.hub.wants("risk"):
            self.hub.publish("risk", None, encoded=risk_event(change).model_dump_json())

    def publish_risk(self, event: RiskEventOut) -> None:
        """Publish a risk event made elsewhere (a limits change through the API)."""
        if self.hub.wants("risk"):
            self.hub.publish("risk", None, encoded=event.model_dump_json())

    # -- orders ---------------------------------------------------------------------------------

    def prime(self) -> None:
        """Count order status changes from now on (those at start are loads and reconciliation)."""
        self._counting = True

    def on_order(self, before: Order | None, after: Order) -> None:
        """Order manager order listener: hand the change over (published and counted just after)."""
        self._changes.append((before, after))
        if len(self._changes) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush_orders)
            except RuntimeError:
                self.flush_orders()

    def flush_orders(self) -> int:
        """Publish and count the order changes handed over so far; return how many."""
        changes, self._changes = self._changes, []
        publish = self.hub.wants("orders")
        for before, after in changes:
            if self._counting and (before is None or before.status is not after.status):
                self._count(after)
            if publish:
                self.hub.publish("orders", None, encoded=order_out(after).model_dump_json())
        return len(changes)

    def _count(self, order: Order) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.orders.labels(order.strategy, order.status.value).inc()
        if order.status is OrderStatus.REJECTED and order.reason.startswith(_RISK_PREFIX):
            rule = order.reason[len(_RISK_PREFIX) :].partition(":")[0].strip() or "unknown"
            metrics.risk_refusals.labels(rule).inc()

    # -- helpers --------------------------------------------------------------------------------

    def mark(self, symbol: str) -> Decimal | None:
        """Return the last price seen on `symbol` (trade or bar close), if any."""
        runner = self.runner
        if runner is None or runner.orders is None:
            return None
        last = runner.orders.risk_context.last_trade(symbol)
        return last.price if last is not None else None

    def _observe_latency(self, report: CloseReport) -> None:
        metrics, runner = self.metrics, self.runner
        if metrics is None or runner is None:
            return
        now_perf = time.perf_counter_ns()
        if runner.mode.value == "replay":  # simulated time: measure the engine's own work
            close_to_order_s = (report.submitted_perf_ns - report.started_perf_ns) / 1e9
        else:
            close_to_order_s = (runner.clock.now_ns() - report.close_ns) / 1e9
        broker = runner.broker.name
        for strategy in sorted({o.strategy for o in report.orders}):
            metrics.bar_close_to_order.labels(strategy).observe(max(0.0, close_to_order_s))
            signal = report.signals_perf_ns.get(strategy)
            if signal:
                sent = report.sent_perf_ns.get(strategy, now_perf)
                metrics.signal_to_broker.labels(broker).observe(max(0.0, (sent - signal) / 1e9))
