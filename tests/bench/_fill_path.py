"""Micro-benchmark of the order path's CPU: submits and fills of one bar close, on the real parts.

`python -m tests.bench._fill_path [--rounds N] [--orders N] [--profiled N]`

Builds what the runner wires (`Runner.start`): an embedded PostgreSQL (under `.pytest-tmp-fillpath`),
a `RiskManager`, a `PaperBroker` (fill at the next open, the engine benchmark's fees and slippage)
and an `OrderManager` over 500 instruments. Each round is one 1 s bar close of the engine benchmark:
`submit_many` of ~1,600 market intents of 40 strategies (sells, buys and all-in buys with a cash
limit), then the venue takes one bar per symbol (`on_bars`) and the manager applies the fills
(`idle`, after a sleeping wait: `idle` itself spins on `sleep(0)` while PostgreSQL works, CPU that
is not the orders'). It prints per round the wall time of the submit and of the fill path and the process CPU
per order (PostgreSQL's own CPU is another process's, not counted), then a cProfile of
`--profiled` more rounds (top 25 by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import statistics
import time
from decimal import Decimal
from pathlib import Path

from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.engine.intents import OrderIntent
from framework.engine.order_manager import OrderManager
from framework.events import Bar
from framework.execution import ExecutionModel
from framework.ingest.loop import run as run_loop
from framework.ingest.loop import settle_gc
from framework.instruments import Instrument
from framework.orders.model import Mode, OrderSide
from framework.risk.gateway import RiskManager
from framework.risk.store import RiskStore
from framework.storage import apply_migrations, connect_dsn
from tests.bench._measure import scratch_postgres

SYMBOLS = 500
STRATEGIES = 40
SECOND_NS = 1_000_000_000
START_NS = 1_800_000_000 * SECOND_NS


def _instruments() -> list[Instrument]:
    return [
        Instrument(f"SYN{i:03d}", tick_size=0.01 if i % 2 else 0.0001, qty_step=0.001 if i % 3 else 1.0)
        for i in range(SYMBOLS)
    ]


def _price(i: int, k: int) -> float:
    return round(50.0 + i * 0.37 + (k % 7) * 0.11, 2)


def _intents(instruments: list[Instrument], orders: int, k: int, venue: str) -> list[OrderIntent]:
    out = []
    for n in range(orders):
        instrument = instruments[(n * 7 + k * 13) % SYMBOLS]
        i = int(instrument.symbol[3:])
        side = OrderSide.BUY if (n + k) % 2 else OrderSide.SELL
        qty = Decimal(1) if instrument.qty_step >= 1 else Decimal("0.125")
        price = Decimal(repr(_price(i, k)))
        cash_limit = price * 2 if side is OrderSide.BUY and n % 4 == 1 else None
        out.append(
            OrderIntent(
                strategy=f"s{n % STRATEGIES:02d}",
                venue=venue,
                symbol=instrument.symbol,
                side=side,
                quantity=qty,
                cash_limit=cash_limit,
                reason="bench",
                decision_ns=START_NS + k * SECOND_NS,
                expected_price=price,
            )
        )
    return out


def _bars(instruments: list[Instrument], k: int, venue: str) -> list[Bar]:
    open_ns = START_NS + k * SECOND_NS
    bars = []
    for instrument in instruments:
        i = int(instrument.symbol[3:])
        p = _price(i, k)
        bars.append(Bar(venue, instrument.symbol, "1s", open_ns, p, p + 0.05, p - 0.05, p + 0.01, 10.0, p, 3))
    return bars


async def _settle(manager: OrderManager) -> None:
    """Wait, sleeping, until the manager is idle: `idle` spins on `sleep(0)`, which would count as order CPU."""
    pending = getattr(manager._events, "pending", None)
    while manager._tasks or manager._busy or (callable(pending) and pending()):
        await asyncio.sleep(0.002)


async def measure(
    dsn: str, workdir: Path, rounds: int, orders: int, profiled: int, dump: str | None, spin: bool
) -> None:
    """Run `rounds` closes of `orders` orders each and print the measures, then `profiled` more under cProfile."""
    pool = await connect_dsn(dsn, min_size=2, max_size=10)
    await apply_migrations(pool)
    clock = SimulatedClock(START_NS)
    instruments = _instruments()
    model = ExecutionModel(fees=0.001, slippage=0.0005, cash=STRATEGIES * 1e6)
    broker = PaperBroker(workdir / "paper", model=model, instruments=instruments, cash=STRATEGIES * 1e6, clock=clock)
    risk = await RiskManager.open(RiskStore(pool), clock)
    await broker.connect()
    manager = OrderManager(
        pool,
        broker,
        risk,
        clock,
        mode=Mode.DEV,
        venue=broker.name,
        instruments={i.symbol: i for i in instruments},
    )
    changes = 0

    def on_order(before: object, after: object) -> None:  # the API hook's cost: hand over, return
        nonlocal changes
        changes += 1

    manager.add_order_listener(on_order)
    await manager.start()
    venue = broker.name
    broker.on_bars(_bars(instruments, -1, venue))  # the decision bar of round 0
    settle_gc()  # as `Runner.start` does: start-up's objects out of the collector's walks
    profiler = cProfile.Profile() if profiled else None
    rows: list[tuple[float, float, float, float]] = []
    venue_ms: list[float] = []
    for k in range(rounds + profiled):
        clock.advance_to(START_NS + k * SECOND_NS)
        intents = _intents(instruments, orders, k, venue)
        bars = _bars(instruments, k, venue)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None and k >= rounds:
            profiler.enable()
        placed = await manager.submit_many(intents)
        t1, cpu_submit = time.perf_counter(), time.process_time()
        clock.advance_to(START_NS + (k + 1) * SECOND_NS)
        broker.on_bars(bars)
        t_venue = time.perf_counter()
        if not spin:
            await _settle(manager)
        await manager.idle()
        if profiler is not None and k >= rounds:
            profiler.disable()
        t2, cpu1 = time.perf_counter(), time.process_time()
        filled = sum(1 for o in placed if manager.orders[o.client_id].filled > 0)
        if k >= rounds:
            continue
        n = len(intents)
        rows.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (cpu1 - cpu0) * 1e6 / n, (cpu_submit - cpu0) * 1e6 / n))
        venue_ms.append((t_venue - t1) * 1e3)
        print(
            f"round {k:2d}: submit {rows[-1][0]:7.1f} ms  fills {rows[-1][1]:7.1f} ms (venue {venue_ms[-1]:5.1f})  "
            f"cpu {rows[-1][2]:6.1f} us/order (submit {rows[-1][3]:5.1f}, fills {rows[-1][2] - rows[-1][3]:5.1f})  "
            f"filled {filled}/{n}"
        )
    steady = rows[1:] or rows

    def median(values: list[float]) -> float:
        return statistics.median(values[1:] or values)

    print(
        f"min cpu {min(r[2] for r in steady):.1f} us/order; median over rounds 1..: "
        f"submit {median([r[0] for r in rows]):.1f} ms, "
        f"fills {median([r[1] for r in rows]):.1f} ms (venue {median(venue_ms):.1f}), "
        f"cpu {median([r[2] for r in rows]):.1f} us/order "
        f"(submit {median([r[3] for r in rows]):.1f}, fills {median([r[2] - r[3] for r in rows]):.1f}) "
        f"({orders} orders/round, {len(manager.alerts)} alerts, {changes} order changes)"
    )
    if profiler is not None:
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        stats.sort_stats("tottime").print_stats(25)
        print(buffer.getvalue())
        if dump is not None:
            stats.dump_stats(dump)
    await manager.close()
    await risk.close()
    await broker.close()
    await pool.close()


async def _main(rounds: int, orders: int, profiled: int, dump: str | None, spin: bool) -> None:
    base = Path.cwd() / ".pytest-tmp-fillpath"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    base.chmod(0o777)
    try:
        async with scratch_postgres(base) as dsn:
            await measure(dsn, base, rounds, orders, profiled, dump, spin)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench._fill_path", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--orders", type=int, default=1_600)
    parser.add_argument("--profiled", type=int, default=6, help="rounds run under cProfile after the timed ones")
    parser.add_argument("--dump", help="also write the profile's stats to this file (for pstats)")
    parser.add_argument("--spin", action="store_true", help="wait with `idle` alone (counting its spinning)")
    args = parser.parse_args()
    run_loop(_main(args.rounds, args.orders, args.profiled, args.dump, args.spin))


if __name__ == "__main__":
    main()
