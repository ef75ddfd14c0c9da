"""The risk manager on a real PostgreSQL: the trading state, limits and loss baselines survive a
restart, every refusal is recorded, and cancels and the kill switch work whatever happens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.clock import SimulatedClock
from framework.errors import TransientError
from framework.events import ns_to_datetime
from framework.risk import (
    GLOBAL,
    RateLimit,
    RiskLimits,
    RiskManager,
    RiskStore,
    Rule,
    StateChange,
    TradingState,
)
from framework.risk.state import DAY_NS
from tests.risk.helpers import SECOND, T0, D, market, order

pytestmark = pytest.mark.db

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


async def open_manager(database, clock) -> RiskManager:
    return await RiskManager.open(RiskStore(database.pool), clock)


async def test_kill_switch_halts_persists_across_restart_and_cancels_are_still_allowed(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    seen: list[StateChange] = []

    async def cancel_everything(change: StateChange) -> None:
        seen.append(change)

    risk.add_listener(cancel_everything)
    ctx = market(positions={("sma", "AAA"): 10})
    assert risk.check(order(), ctx).accepted

    change = await risk.kill("runaway strategy")
    assert (change.scope, change.previous, change.state) == (GLOBAL, ACTIVE, HALTED)
    assert change.cancel_open_orders
    assert seen == [change]
    refused = risk.check(order("sell", 1), ctx)
    assert refused.rule == Rule.HALTED
    assert refused.reason == "trading is halted: kill switch: runaway strategy"
    assert risk.check_cancel("c1").accepted

    restarted = await open_manager(database, clock)
    assert restarted.state is HALTED
    assert restarted.core.reason() == "kill switch: runaway strategy"
    assert restarted.check(order(), ctx).rule == Rule.HALTED
    assert restarted.check_cancel("c1").accepted

    again = await restarted.kill("pressed twice")  # still cancels whatever is working
    assert (again.previous, again.state, again.cancel_open_orders) == (HALTED, HALTED, True)

    await restarted.release("cause found and fixed")
    assert restarted.check(order(), ctx).accepted
    assert (await open_manager(database, clock)).state is ACTIVE


async def test_a_manual_reducing_only_state_is_persisted(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    change = await risk.set_state(REDUCING, "wind down before the auction")
    assert change is not None
    restarted = await open_manager(database, clock)
    assert restarted.state is REDUCING
    assert restarted.check(order(), market()).rule == Rule.REDUCING_ONLY
    stored = await RiskStore(database.pool).load_state()
    assert (stored.state, stored.reason, stored.since_ns) == (REDUCING, "wind down before the auction", T0)


async def test_limits_set_at_run_time_are_persisted_and_loaded_by_a_new_manager(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    account = RiskLimits(max_order_qty=D(100), rate_limit=RateLimit(10, 1.0), price_collar=Decimal("0.05"))
    await risk.set_limits(GLOBAL, account)
    await risk.set_limits("sma", RiskLimits(max_position_notional=D(50_000)))
    await risk.set_limits("rsi", RiskLimits(max_open_orders=2))
    assert risk.check(order(qty=101), market()).rule == Rule.MAX_ORDER_QTY

    restarted = await open_manager(database, clock)
    assert restarted.core.all_limits() == {
        GLOBAL: account,
        "sma": RiskLimits(max_position_notional=D(50_000)),
        "rsi": RiskLimits(max_open_orders=2),
    }
    await restarted.set_limits(GLOBAL, account.evolve(max_order_qty=D(200)))
    await restarted.set_limits("rsi", None)
    assert restarted.check(order(qty=101), market()).accepted

    third = await open_manager(database, clock)
    assert third.limits().max_order_qty == D(200)
    assert set(third.core.all_limits()) == {GLOBAL, "sma"}


async def test_every_refusal_is_recorded_with_its_rule_reason_and_the_clock_time(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    await risk.set_limits(GLOBAL, RiskLimits(max_order_qty=D(10), stale_after_s=5.0))
    ctx = market(traded_at=T0)
    big = order(qty=11, strategy="sma")
    assert risk.check(big, ctx).rule == Rule.MAX_ORDER_QTY
    clock.advance_to(T0 + 6 * SECOND)
    late = order(qty=1, strategy="rsi", symbol="AAA")
    assert risk.check(late, ctx).rule == Rule.STALE_DATA
    assert risk.check(order(qty=1), market(traded_at=T0 + 6 * SECOND)).accepted
    await risk.flush()

    store = RiskStore(database.pool)
    recorded = await store.refusals()
    assert [(r.client_id, r.strategy, r.symbol, r.rule) for r in recorded] == [
        (big.client_id, "sma", "AAA", "max_order_qty"),
        (late.client_id, "rsi", "AAA", "stale_data"),
    ]
    assert recorded[0].reason == "order quantity 11 AAA is above the account limit of 10"
    assert [r.time_ns for r in recorded] == [T0, T0 + 6 * SECOND]
    assert [r.rule for r in await store.refusals(strategy="rsi")] == ["stale_data"]
    assert await store.refusals(since=ns_to_datetime(T0 + SECOND), limit=5) == recorded[1:]


async def test_a_burst_of_refusals_is_written_in_batches_and_close_writes_the_rest(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    await risk.set_state(HALTED, "maintenance")
    for _ in range(1500):
        risk.check(order(), market())
    await risk.close()
    assert len(await RiskStore(database.pool).refusals(limit=5000)) == 1500


async def test_a_daily_loss_state_persists_and_the_loss_baseline_survives_a_restart(database):
    start = (T0 // DAY_NS) * DAY_NS
    clock = SimulatedClock(start - 60 * SECOND)
    risk = await open_manager(database, clock)
    await risk.set_limits(GLOBAL, RiskLimits(daily_loss_reduce=D(1_000), daily_loss_halt=D(3_000)))
    snapshots = [(start - 60 * SECOND, 100_000), (start + 60 * SECOND, 99_500), (start + 120 * SECOND, 99_200)]
    await insert_equity(database, GLOBAL, snapshots)
    clock.advance_to(start + 180 * SECOND)

    restarted = await open_manager(database, clock)
    mark = restarted.core.mark(GLOBAL)
    assert mark is not None
    assert (mark.day_start, mark.peak, mark.last) == (D(100_000), D(100_000), D(99_200))
    assert restarted.state is ACTIVE  # 800 lost today: below the limit
    change = await restarted.on_equity(GLOBAL, D(98_900))  # 1,100 since the day start, not since the restart
    assert change is not None
    assert change.state is REDUCING

    third = await open_manager(database, clock)
    assert third.state is REDUCING
    assert third.core.reason() == "account daily loss 1,100 reached the reducing-only limit of 1,000"


async def test_a_strategy_over_its_loss_limit_is_restricted_again_after_a_restart(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    await risk.set_limits("sma", RiskLimits(max_drawdown=D("0.2")))
    await insert_equity(database, "sma", [(T0 - 3 * SECOND, 10_000), (T0 - 2 * SECOND, 12_000), (T0 - SECOND, 9_000)])
    await insert_equity(database, "rsi", [(T0 - SECOND, 5_000)])
    restarted = await open_manager(database, clock)
    assert restarted.state is ACTIVE
    assert restarted.core.state("sma") is HALTED
    assert restarted.check(order(strategy="sma"), market()).rule == Rule.HALTED
    assert restarted.check(order(strategy="rsi"), market()).accepted


async def test_a_release_starts_the_loss_measures_over_even_after_a_restart(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    await risk.set_limits(GLOBAL, RiskLimits(max_drawdown=D("0.1")))
    await insert_equity(database, GLOBAL, [(T0 - 2 * SECOND, 100_000), (T0 - SECOND, 85_000)])
    await risk.on_equity(GLOBAL, D(100_000), T0 - 2 * SECOND)
    assert await risk.on_equity(GLOBAL, D(85_000), T0 - SECOND) is not None
    assert risk.state is HALTED
    clock.advance_to(T0 + SECOND)
    await risk.release("loss accepted")
    await insert_equity(database, GLOBAL, [(T0 + 2 * SECOND, 84_000)])
    clock.advance_to(T0 + 3 * SECOND)
    restarted = await open_manager(database, clock)
    assert restarted.state is ACTIVE
    mark = restarted.core.mark(GLOBAL)
    assert mark is not None
    assert mark.peak == D(85_000)


async def test_the_kill_switch_halts_and_cancels_even_when_the_database_is_down(database):
    clock = SimulatedClock(T0)
    risk = await open_manager(database, clock)
    cancelled: list[str] = []

    async def cancel_everything(change: StateChange) -> None:
        cancelled.append(change.scope)

    risk.add_listener(cancel_everything)
    await database.pool.close()
    with pytest.raises(TransientError, match="not persisted"):
        await risk.kill("exchange misbehaving")
    assert cancelled == [GLOBAL]
    assert risk.check(order(), market()).rule == Rule.HALTED
    assert risk.check_cancel("c9").accepted


async def test_a_failing_listener_does_not_stop_the_others(database):
    risk = await open_manager(database, SimulatedClock(T0))
    calls: list[str] = []

    async def broken(change: StateChange) -> None:
        calls.append("broken")
        raise RuntimeError("broker unreachable")

    async def hub(change: StateChange) -> None:
        calls.append("hub")

    risk.add_listener(broken)
    risk.add_listener(hub)
    with pytest.raises(RuntimeError, match="broker unreachable"):
        await risk.kill("test")
    assert calls == ["broken", "hub"]
    assert (await open_manager(database, SimulatedClock(T0))).state is HALTED


async def insert_equity(database, strategy: str, points: list[tuple[int, int]]) -> None:
    await database.pool.executemany(
        "INSERT INTO equity_snapshots (strategy, time, equity, cash, realised_pnl, unrealised_pnl)"
        " VALUES ($1, $2, $3, $3, 0, 0)",
        [(strategy, ns_to_datetime(t), Decimal(e)) for t, e in points],
    )
