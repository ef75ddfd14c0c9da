"""The runner's Prometheus metrics, in a registry of its own, and the event-loop lag sampler.

`RunnerMetrics` creates every metric the runner exports on `/metrics`, in its own
`CollectorRegistry` (never prometheus-client's global one: two runners in one test process, or a
test and a runner, must not share counters). The parts of the runner hold the one instance they
are given and update its metrics directly (`metrics.ticks_received.labels(feed).inc(n)`); the few
with logic behind them have methods: trading states, feed liveness, the database pool.

Names (all prefixed `rata_`; counters gain `_total`, histograms `_bucket`/`_sum`/`_count`):

| metric | type | labels |
|---|---|---|
| rata_ticks_received_total, rata_ticks_written_total | counter | feed / none |
| rata_bad_messages_total | counter | feed, reason |
| rata_tick_to_commit_seconds | histogram | |
| rata_bar_close_to_order_seconds | histogram | strategy |
| rata_signal_to_broker_seconds | histogram | broker |
| rata_orders_total (order updates by status) | counter | strategy, status |
| rata_risk_refusals_total | counter | rule |
| rata_position_quantity | gauge | strategy, symbol |
| rata_strategy_equity, rata_strategy_realised_pnl, rata_strategy_unrealised_pnl | gauge | strategy |
| rata_risk_daily_loss, rata_risk_daily_loss_limit (the halt limit) | gauge | scope (`*` = account) |
| rata_trading_state (1 for the scope's current state, 0 for the others) | gauge | scope, state |
| rata_feed_connected, rata_feed_last_message_timestamp_seconds | gauge | feed |
| rata_feed_staleness_seconds (computed at scrape time on the injected clock) | gauge | feed |
| rata_feed_reconnects_total | counter | feed |
| rata_event_loop_lag_seconds | histogram | |
| rata_db_pool_connections_in_use, rata_db_pool_connections, rata_db_pool_max_connections | gauge | |
| rata_db_errors_total | counter | operation |
| rata_websocket_clients | gauge | |
| rata_websocket_disconnects_total | counter | reason |

`monitoring/prometheus/alerts.yml` and `monitoring/grafana/rata.json` use these names; a test
checks that every name they use is exported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from types import TracebackType

import asyncpg
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from framework.clock import Clock, WallClock

__all__ = ["LATENCY_BUCKETS", "TRADING_STATES", "BulkHistogram", "EventLoopLagSampler", "RunnerMetrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TRADING_STATES = ("active", "reducing", "halted")
_NS = 1_000_000_000


class BulkHistogram(Collector):
    """A Prometheus histogram (no labels) that counts a whole numpy array of observations at once.

    Written by hand because prometheus-client's `Histogram.observe` takes one value at a time
    under a lock, and the ingestion writer commits thousands of trades a second: their latencies
    are counted with one `searchsorted` and one `bincount` per commit instead. The exposition is
    the standard one (`_bucket{le=...}`, `_sum`, `_count`).
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts = np.zeros(len(self._bounds) + 1, dtype=np.int64)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        self.observe_many(np.array([seconds], dtype=np.float64))

    def observe_many(self, seconds: npt.ArrayLike) -> None:
        """Count every value of `seconds` (an observation equal to a bound falls in that bound's bucket)."""
        values = np.asarray(seconds, dtype=np.float64)
        if values.size == 0:
            return
        index = np.searchsorted(self._bounds, values, side="left")
        self._counts += np.bincount(index, minlength=self._counts.size)
        self._sum += float(values.sum())

    def describe(self) -> Iterable[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterable[Metric]:
        cumulative = np.cumsum(self._counts)
        buckets = [(repr(float(bound)), int(count)) for bound, count in zip(self._bounds, cumulative[:-1], strict=True)]
        buckets.append(("+Inf", int(cumulative[-1])))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum)


class _FeedStaleness(Collector):
    """`rata_feed_staleness_seconds`: now minus each feed's last message, computed when scraped."""

    name = "rata_feed_staleness_seconds"
    doc = "Seconds since the feed's last message (or since it was registered)"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.last_ns: dict[str, int] = {}

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.doc, labels=["feed"])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.doc, labels=["feed"])
        now = self._clock.now_ns()
        for feed, last in sorted(self.last_ns.items()):
            family.add_metric([feed], max(0, now - last) / _NS)
        return [family]


class RunnerMetrics:
    """Every metric of the runner, registered in `self.registry`; see the module docstring."""

    def __init__(self, registry: CollectorRegistry | None = None, clock: Clock | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock: Clock = clock or WallClock()
        self.ticks_received = Counter("rata_ticks_received", "Ticks received from feeds", ["feed"], registry=r)
        self.ticks_written = Counter("rata_ticks_written", "Ticks committed to the database", registry=r)
        self.bad_messages = Counter(
            "rata_bad_messages", "Feed messages dropped as invalid, by reason", ["feed", "reason"], registry=r
        )
        self.tick_to_commit = BulkHistogram(
            "rata_tick_to_commit_seconds",
            "From a tick's send time at the venue (or its receipt) to the commit of the batch holding it",
            LATENCY_BUCKETS,
        )
        r.register(self.tick_to_commit)
        self.bar_close_to_order = Histogram(
            "rata_bar_close_to_order_seconds",
            "From a bar's close to the order intent the strategy's decision caused",
            ["strategy"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.signal_to_broker = Histogram(
            "rata_signal_to_broker_seconds",
            "From a signal to the order's hand-over to the broker (risk checks and durable intent included)",
            ["broker"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.orders = Counter("rata_orders", "Order updates by status", ["strategy", "status"], registry=r)
        self.risk_refusals = Counter("rata_risk_refusals", "Orders refused by risk, by rule", ["rule"], registry=r)
        self.position = Gauge(
            "rata_position_quantity", "Net position (instrument units)", ["strategy", "symbol"], registry=r
        )
        self.equity = Gauge("rata_strategy_equity", "Strategy equity", ["strategy"], registry=r)
        self.realised_pnl = Gauge("rata_strategy_realised_pnl", "Realised PnL", ["strategy"], registry=r)
        self.unrealised_pnl = Gauge("rata_strategy_unrealised_pnl", "Unrealised PnL", ["strategy"], registry=r)
        self.daily_loss = Gauge(
            "rata_risk_daily_loss", "Loss since the UTC day start (negative in profit)", ["scope"], registry=r
        )
        self.daily_loss_limit = Gauge(
            "rata_risk_daily_loss_limit", "Daily loss that halts trading (the halt limit)", ["scope"], registry=r
        )
        self.trading_state = Gauge(
            "rata_trading_state",
            "1 for the scope's current trading state, 0 for the others",
            ["scope", "state"],
            registry=r,
        )
        self.feed_connected = Gauge("rata_feed_connected", "1 while the feed is connected", ["feed"], registry=r)
        self.feed_last_message = Gauge(
            "rata_feed_last_message_timestamp_seconds", "Time of the feed's last message", ["feed"], registry=r
        )
        self.feed_reconnects = Counter("rata_feed_reconnects", "Feed reconnections", ["feed"], registry=r)
        self._staleness = _FeedStaleness(self._clock)
        r.register(self._staleness)
        self.event_loop_lag = Histogram(
            "rata_event_loop_lag_seconds", "How late the event loop woke a sleeper", buckets=LAG_BUCKETS, registry=r
        )
        self.db_pool_in_use = Gauge("rata_db_pool_connections_in_use", "Pool connections in use", registry=r)
        self.db_pool_size = Gauge("rata_db_pool_connections", "Pool connections open", registry=r)
        self.db_pool_max = Gauge("rata_db_pool_max_connections", "Pool size limit", registry=r)
        self.db_errors = Counter("rata_db_errors", "Database errors, by operation", ["operation"], registry=r)
        self.websocket_clients = Gauge("rata_websocket_clients", "Connected WebSocket clients", registry=r)
        self.websocket_disconnects = Counter(
            "rata_websocket_disconnects",
            "WebSocket clients disconnected by the server, by reason",
            ["reason"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """Return the metrics in the Prometheus text format (the body of `/metrics`)."""
        return generate_latest(self.registry)

    def set_trading_state(self, scope: str, state: str) -> None:
        """Mark `state` as the current trading state of `scope` (`*` for the account)."""
        if state not in TRADING_STATES:
            raise ValueError(f"unknown trading state {state!r}; valid: {', '.join(TRADING_STATES)}")
        for name in TRADING_STATES:
            self.trading_state.labels(scope, name).set(1 if name == state else 0)

    def set_feed_connected(self, feed: str, connected: bool) -> None:
        """Record a feed's connection state; a feed seen for the first time starts its staleness now."""
        self.feed_connected.labels(feed).set(1 if connected else 0)
        self._staleness.last_ns.setdefault(feed, self._clock.now_ns())

    def feed_message(self, feed: str, at_ns: int | None = None) -> None:
        """Record that `feed` delivered a message (at `at_ns`, default now on the clock)."""
        when = self._clock.now_ns() if at_ns is None else at_ns
        self._staleness.last_ns[feed] = when
        self.feed_last_message.labels(feed).set(when / _NS)

    def bind_pool(self, pool: asyncpg.Pool) -> None:
        """Report the pool's connections (in use, open, limit), read at every scrape."""
        self.db_pool_size.set_function(lambda: float(pool.get_size()))
        self.db_pool_in_use.set_function(lambda: float(pool.get_size() - pool.get_idle_size()))
        self.db_pool_max.set_function(lambda: float(pool.get_max_size()))


class EventLoopLagSampler:
    """Sleep `interval_s` over and over and record how much later than asked the loop woke up.

    A lag means something blocked the loop (a CPU-bound call, a synchronous I/O) and delayed every
    tick, order and WebSocket message with it. `time_fn` defaults to the loop's monotonic clock.

        async with EventLoopLagSampler(metrics.event_loop_lag.observe):
            ...  # the runner's work
    """

    def __init__(
        self, observe: Callable[[float], None], interval_s: float = 0.25, time_fn: Callable[[], float] | None = None
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._observe = observe
        self.interval_s = interval_s
        self._time_fn = time_fn
        self._task: asyncio.Task[None] | None = None

    async def run(self, samples: int | None = None) -> None:
        """Sample forever (or `samples` times)."""
        now = self._time_fn or asyncio.get_running_loop().time
        taken = 0
        while samples is None or taken < samples:
            start = now()
            await asyncio.sleep(self.interval_s)
            self._observe(max(0.0, now() - start - self.interval_s))
            taken += 1

    def start(self) -> None:
        """Start sampling in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="event-loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> EventLoopLagSampler:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
