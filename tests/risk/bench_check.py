"""Measure what one risk check costs (not a test: run `python -m tests.risk.bench_check`).

Every limit is set for the account and for the strategy, so an accepted order walks every rule;
the book holds 40 strategies x 500 instruments. Prints p50/p99/p99.9 and the mean in microseconds
for the pure core, the manager (adds the clock read) and the refusal path (adds queueing).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from decimal import Decimal

from framework.clock import SimulatedClock
from framework.orders import Order, OrderSide, OrderType
from framework.risk import GLOBAL, LastTrade, RateLimit, RiskCore, RiskLimits, RiskManager, RiskSnapshot, RiskStore

T0 = 1_700_000_000 * 1_000_000_000
N = 200_000


def limits(scale: int) -> RiskLimits:
    return RiskLimits(
        max_order_qty=Decimal(1_000 * scale),
        max_order_notional=Decimal(1_000_000 * scale),
        max_position_qty=Decimal(10_000 * scale),
        max_position_notional=Decimal(10_000_000 * scale),
        max_gross_exposure=Decimal(10**12),
        max_open_orders=100_000,
        rate_limit=RateLimit(10**9, 1.0),
        price_collar=Decimal("0.05"),
        stale_after_s=60.0,
        daily_loss_reduce=Decimal(10**6),
        daily_loss_halt=Decimal(2 * 10**6),
        max_drawdown=Decimal("0.5"),
    )


def book() -> RiskSnapshot:
    symbols = [f"S{i:03d}" for i in range(500)]
    positions = {(f"st{k}", s): Decimal((i + k) % 7 - 3) for k in range(40) for i, s in enumerate(symbols)}
    trades = {s: LastTrade(Decimal("100.25"), T0) for s in symbols}
    return RiskSnapshot(positions, trades, {f"st{k}": 5 for k in range(40)})


def orders(count: int, qty: str = "3") -> list[Order]:
    return [
        Order(
            client_id=f"c{i}",
            strategy=f"st{i % 40}",
            venue="SIM",
            symbol=f"S{i % 500:03d}",
            side=OrderSide.BUY if i % 2 else OrderSide.SELL,
            quantity=Decimal(qty),
            type=OrderType.LIMIT if i % 3 == 0 else OrderType.MARKET,
            limit_price=Decimal("100.5") if i % 3 == 0 else None,
        )
        for i in range(count)
    ]


def report(name: str, samples: list[int]) -> None:
    samples.sort()
    us = [s / 1000 for s in samples]
    pick = lambda q: us[min(len(us) - 1, int(q * len(us)))]  # noqa: E731
    print(
        f"{name:<34} p50 {pick(0.5):6.2f} µs  p99 {pick(0.99):6.2f} µs  p99.9 {pick(0.999):6.2f} µs  "
        f"mean {statistics.fmean(us):6.2f} µs  (n={len(us)})"
    )


async def main() -> None:
    ctx = book()
    scopes = {GLOBAL: limits(100)} | {f"st{k}": limits(1) for k in range(40)}
    batch = orders(N)

    core = RiskCore(scopes)
    samples = []
    gc.disable()
    for i, o in enumerate(batch):
        t = time.perf_counter_ns()
        decision = core.check(o, ctx, T0 + i * 1000)
        samples.append(time.perf_counter_ns() - t)
        assert decision.accepted, decision
    gc.enable()
    report("RiskCore.check, accepted", samples)

    clock = SimulatedClock(T0)
    manager = RiskManager(RiskStore(None), clock, RiskCore(scopes))  # type: ignore[arg-type]
    samples = []
    gc.disable()
    for i, o in enumerate(batch):
        clock.advance_to(T0 + i * 1000)
        t = time.perf_counter_ns()
        decision = manager.check(o, ctx)
        samples.append(time.perf_counter_ns() - t)
        assert decision.accepted, decision
    gc.enable()
    report("RiskManager.check, accepted", samples)

    refused = orders(20_000, qty="5000")
    samples = []
    manager._flusher = asyncio.get_running_loop().create_future()  # type: ignore[assignment]  # no DB: keep queued
    gc.disable()
    for o in refused:
        t = time.perf_counter_ns()
        decision = manager.check(o, ctx)
        samples.append(time.perf_counter_ns() - t)
        assert not decision.accepted
    gc.enable()
    report("RiskManager.check, refused+queued", samples)


if __name__ == "__main__":
    asyncio.run(main())
