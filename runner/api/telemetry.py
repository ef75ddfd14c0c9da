"""Periodic work of the API beside the runner: metrics sampling and the equity channel.

Every `telemetry_interval_s` the metrics that are states rather than events are sampled
(positions, PnL and equity per strategy, trading states, feed health and the ingestion counters)
and equity is published on the `equity` channel. Each pass is bounded by the size of the book;
nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

from prometheus_client import Counter

from runner.api import trading
from runner.api.context import ApiContext
from runner.api.convert import maybe_time
from runner.api.schemas import EquityPoint
from runner.metrics import RunnerMetrics
from runner.service import Runner

__all__ = ["Telemetry"]

log = logging.getLogger(__name__)


class Telemetry:
    """Run the samplers of one app; see the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self._counted: dict[str, float] = {}

    def start(self) -> None:
        """Start the periodic task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rata-api-telemetry")

    async def stop(self) -> None:
        """Stop the periodic task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.options.telemetry_interval_s)
            runner = self.ctx.runner
            if runner is None:
                continue
            try:
                self.sample(runner)
            except Exception:
                log.exception("API telemetry pass failed")

    def sample(self, runner: Runner) -> None:
        """Sample the state metrics and publish equity."""
        metrics = self.ctx.metrics
        self._positions(runner, metrics)
        self._equity(runner, metrics)
        self._feed(runner, metrics)
        if runner.risk is not None:
            for scope, (state, _) in runner.risk.core.states().items():
                metrics.set_trading_state(scope, state.value)
            for scope in runner.risk.core.all_limits():
                mark = runner.risk.core.mark(scope)
                halt = runner.risk.limits(scope).daily_loss_halt
                if mark is not None:
                    metrics.daily_loss.labels(scope).set(float(mark.daily_loss))
                if halt is not None:
                    metrics.daily_loss_limit.labels(scope).set(float(halt))

    def _positions(self, runner: Runner, metrics: RunnerMetrics) -> None:
        if runner.orders is None:
            return
        for position in runner.orders.positions.positions():
            metrics.position.labels(position.strategy, position.symbol).set(float(position.quantity))

    def _equity(self, runner: Runner, metrics: RunnerMetrics) -> None:
        if runner.engine is None or runner.snapshots is None or runner.orders is None:
            return
        hub = runner.events.hub
        publish = hub.wants("equity")
        now = maybe_time(runner.clock.now_ns())
        for instance_id, running in list(runner.engine.instances.items()):
            equity, cash, realised, unrealised = runner.snapshots.equity_of(running.spec)
            metrics.equity.labels(instance_id).set(float(equity))
            metrics.realised_pnl.labels(instance_id).set(float(realised))
            metrics.unrealised_pnl.labels(instance_id).set(float(unrealised))
            if publish and now is not None:
                point = EquityPoint(
                    strategy=instance_id, time=now, equity=equity, cash=cash, realised=realised, unrealised=unrealised
                )
                hub.publish("equity", None, encoded=point.model_dump_json())
        if publish and now is not None:
            account = trading.account(runner)
            point = EquityPoint(
                strategy="*",
                time=now,
                equity=account.equity,
                cash=account.cash,
                realised=account.realised,
                unrealised=account.unrealised if account.unrealised is not None else Decimal(0),
            )
            hub.publish("equity", None, encoded=point.model_dump_json())

    def _feed(self, runner: Runner, metrics: RunnerMetrics) -> None:
        health = runner.feed.health()
        name = health.name
        metrics.set_feed_connected(name, health.connected)
        if health.last_message_ns is not None:
            metrics.feed_message(name, health.last_message_ns)
        self._add(metrics.feed_reconnects.labels(name), f"reconnects:{name}", health.reconnects)
        pipeline = runner.pipeline
        if pipeline is None:
            self._add(metrics.ticks_received.labels(name), f"received:{name}", health.messages)
            return
        stats = pipeline.stats()
        self._add(metrics.ticks_received.labels(name), f"received:{name}", stats.received)
        self._add(metrics.ticks_written, "written", stats.ticks_written)
        for reason, count in stats.rejected.items():
            self._add(metrics.bad_messages.labels(name, reason), f"bad:{name}:{reason}", count)

    def _add(self, counter: Counter, key: str, total: float) -> None:
        """Advance a counter to a running total read from elsewhere (never backwards)."""
        delta = total - self._counted.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)
            self._counted[key] = total
