"""Live engine benchmark: 40 strategy instances over 500 instruments on 1-second bars, dev mode.

The whole runner runs as in production: SyntheticFeed (500 instruments, 5,000 ticks/s) -> ingestion
pipeline (validation, bar aggregation, COPY into the embedded PostgreSQL) -> strategy engine (40
instances, each deciding on all 500 instruments at every 1 s close) -> order manager (intent
committed before sending, risk gateway) -> paper venue. The venue is wrapped to timestamp each
broker call. Measured, per order:

- signal -> broker call: from the moment the instance's `signals()` returned to `broker.submit`
  (the original architecture's measure, 300 ms allowed; target p99 < 1 ms);
- close complete -> broker call: from the moment the engine had every bar of the close (all 40
  instances then decide on it) to `broker.submit` (target p99 < 20 ms);
- period end -> broker call: from the end of the bar's second on the wall clock, which adds the
  time bars take to close (the next trade of each instrument, or the close delay for quiet ones).

Also: ticks/s stored, CPU, peak RSS; and a cProfile of the engine side, whose top entries are
printed next to the table.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from framework.brokers.paper import PaperBroker
from framework.clock import WallClock
from framework.engine.strategy_engine import CloseReport
from framework.execution import ExecutionModel
from framework.feeds.synthetic import SyntheticFeed
from framework.orders.model import Order, OrderUpdate
from framework.storage import EmbeddedPostgres, apply_migrations, connect_dsn
from runner.config import FeedConfig, RunConfig, RunnerSection, StrategyConfig
from runner.parity import drop_database, scratch_database
from runner.service import Runner
from tests.bench._report import machine_rows, markdown_table, rich_table, update_section

INSTRUMENTS = 500
RATE = 5_000.0
STRATEGIES = 40


class TimedPaperBroker(PaperBroker):
    """The paper venue, noting when each order reached it."""

    calls: dict[str, int]

    async def submit(self, order: Order) -> OrderUpdate:
        self.calls[order.client_id] = time.perf_counter_ns()
        self.wall[order.client_id] = time.time_ns()
        return await super().submit(order)


def instances() -> list[StrategyConfig]:
    """Return 40 instances of the shipped strategies, each over all 500 instruments."""
    out = []
    for k in range(STRATEGIES):
        kind = k % 3
        if kind == 0:
            name, params = "sma_cross", {"fast": 5 + k % 5, "slow": 20 + k % 11}
        elif kind == 1:
            name, params = "rsi_reversion", {"window": 3 + k % 2}
        else:
            name, params = "bollinger_breakout", {"window": 10 + k % 6}
        out.append(
            StrategyConfig(
                id=f"s{k:02d}-{name}", strategy=name, params=params, symbols=INSTRUMENTS, timeframe="1s", capital=1e6
            )
        )
    return out


def percentiles(values_ns: list[int]) -> tuple[str, str, str]:
    """Return p50, p99, p99.9 in milliseconds."""
    if not values_ns:
        return ("-", "-", "-")
    arr = np.asarray(values_ns, dtype=float) / 1e6
    return tuple(f"{np.percentile(arr, q):.2f}" for q in (50, 99, 99.9))  # type: ignore[return-value]


async def measure(dsn: str, workdir: Path, seconds: float, profile: bool) -> dict[str, Any]:
    """Run the runner for `seconds` (after a warm-up) and return the measurements."""
    pool = await connect_dsn(dsn, min_size=2, max_size=10)
    await apply_migrations(pool)
    clock = WallClock()
    feed = SyntheticFeed(INSTRUMENTS, RATE, seed=7, clock=clock)
    model = ExecutionModel(fees=0.001, slippage=0.0005, cash=STRATEGIES * 1e6)
    broker = TimedPaperBroker(workdir / "paper", model=model, cash=STRATEGIES * 1e6, clock=clock)
    broker.calls, broker.wall = {}, {}  # type: ignore[attr-defined]
    config = RunConfig(
        runner=RunnerSection(mode="dev", cash=STRATEGIES * 1e6, snapshot_every_s=5.0),
        feed=FeedConfig(kind="synthetic", instruments=INSTRUMENTS, rate=RATE),
        strategies=instances(),
    )
    runner = Runner(config.check(), pool, feed, broker, clock, spool_dir=workdir / "spool")
    reports: list[CloseReport] = []
    await runner.start()
    assert runner.engine is not None
    runner.engine.add_report_listener(reports.append)
    task = asyncio.create_task(runner.run())
    warmup = 45.0  # the longest warm-up (rsi: 10 x 4 bars) plus a few closes
    await asyncio.sleep(warmup)
    reports.clear()
    broker.calls.clear()
    broker.wall.clear()  # type: ignore[attr-defined]
    pipeline = runner.pipeline
    written_before = pipeline.stats().ticks_written if pipeline else 0
    cpu_before = time.process_time()
    started = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    await asyncio.sleep(seconds)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    written = (pipeline.stats().ticks_written if pipeline else 0) - written_before
    runner.stop()
    await task
    orders = runner.orders.orders if runner.orders else {}
    signal_ns, complete_ns, period_ns = [], [], []
    decided_per_close = []
    for report in reports:
        decided_per_close.append(len(report.decided))
        for order in report.orders:
            call = broker.calls.get(order.client_id)
            if call is None:
                continue
            signal_ns.append(call - report.signals_perf_ns[order.strategy])
            complete_ns.append(call - report.started_perf_ns)
            period_ns.append(broker.wall[order.client_id] - report.close_ns)  # type: ignore[attr-defined]
    stats = None
    if profiler:
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer).sort_stats("tottime")
        stats.print_stats(14)
        stats = buffer.getvalue()
    await pool.close()
    return {
        "seconds": elapsed,
        "closes": len(reports),
        "decisions": sum(decided_per_close),
        "orders": len(signal_ns),
        "all_orders": len(orders),
        "signal": percentiles(signal_ns),
        "complete": percentiles(complete_ns),
        "period": percentiles(period_ns),
        "ticks_per_s": written / elapsed,
        "cpu": 100 * cpu / elapsed,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "median_decided": statistics.median(decided_per_close) if decided_per_close else 0,
        "profile": stats,
        "disabled": [r.spec.id for r in runner.engine.instances.values() if r.spec.state.value == "disabled"],
    }


async def _run(seconds: float, profile: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="rata-bench-engine-", dir=Path.cwd() / ".pytest-tmp-bench"))
    root.chmod(0o777)
    server = EmbeddedPostgres(root / "pgdata")
    server.start()
    try:
        name, dsn = await scratch_database(server.dsn)
        try:
            return await measure(dsn, root, seconds, profile)
        finally:
            await drop_database(server.dsn, name)
    finally:
        server.stop()


def run(console: Console, *, quick: bool) -> list[Any]:
    """Measure and return the table (and write RESULTS.md unless `quick`)."""
    (Path.cwd() / ".pytest-tmp-bench").mkdir(exist_ok=True)
    (Path.cwd() / ".pytest-tmp-bench").chmod(0o777)
    seconds = 30.0 if quick else 180.0
    result = asyncio.run(_run(seconds, profile=False))
    profiled = asyncio.run(_run(20.0 if quick else 40.0, profile=True))
    header = ("measure", "p50 ms", "p99 ms", "p99.9 ms", "target")
    rows = [
        ("signal -> broker call", *result["signal"], "p99 < 1 ms"),
        ("close complete -> broker call (40 deciding)", *result["complete"], "p99 < 20 ms"),
        ("period end -> broker call (incl. bar closing)", *result["period"], "(context)"),
    ]
    setup = [
        ("run", f"{result['seconds']:.0f} s measured after a 45 s warm-up, dev mode"),
        ("load", f"{STRATEGIES} instances x {INSTRUMENTS} instruments, 1 s bars, synthetic {RATE:,.0f} ticks/s"),
        (
            "closes decided",
            f"{result['closes']:,} ({result['decisions']:,} decisions, median {result['median_decided']} per close)",
        ),
        ("orders timed", f"{result['orders']:,} (of {result['all_orders']:,} placed)"),
        ("ticks stored", f"{result['ticks_per_s']:,.0f} /s"),
        ("CPU", f"{result['cpu']:.0f}% of one core (process)"),
        ("peak RSS", f"{result['rss_mib']:,.0f} MiB (target < 1 GiB)"),
        ("disabled instances", ", ".join(result["disabled"]) or "none"),
        *machine_rows(["vectorbt", "pandas", "asyncpg"]),
    ]
    tables = [rich_table("engine latency", header, rows), rich_table("setup", ("", ""), setup)]
    if not quick:
        body = (
            f"{markdown_table(header, rows)}\n\n{markdown_table(('setup', ''), setup)}\n\n"
            f"Profile (cProfile, {profiled['seconds']:.0f} s of the same load, top by own time):\n\n"
            f"```\n{profiled['profile']}\n```\n"
        )
        update_section("## Live engine: 40 strategies x 500 instruments (issue: live trading engine)", body)
    tables.append(profiled["profile"] or "")
    return tables
