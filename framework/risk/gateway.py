"""`RiskManager`: the one gateway every order passes before any broker, with its state persisted.

Wiring (the runner does this once)::

    risk = await RiskManager.open(RiskStore(db.pool), clock)
    risk.add_listener(engine.on_risk_state)      # cancels working orders when a scope is halted
    ...
    decision = risk.check(order, engine.risk_context)   # before every broker.submit
    if not decision.accepted: ...mark the order rejected with decision.reason...
    ...
    await risk.on_equity("*", account_equity)            # and per strategy, as PnL moves
    await risk.kill("trader pressed the kill switch")   # halt + cancel everything
    await risk.release("checked, restarting")           # back to active, by a person
    await risk.close()

`check` is synchronous and does no I/O, so it costs microseconds on the hot path; refusals are
queued and written to `risk_refusals` by a background task (call `flush` to wait for them).
State changes and limit changes are written before the call returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from framework.clock import Clock
from framework.errors import ParameterError, TransientError
from framework.orders.model import Order
from framework.risk.context import RiskContext
from framework.risk.core import RiskCore
from framework.risk.decision import ACCEPTED, RiskDecision
from framework.risk.limits import GLOBAL, RiskLimits
from framework.risk.state import StateChange, TradingState
from framework.risk.store import Refusal, RiskStore

__all__ = ["RiskListener", "RiskManager"]

log = logging.getLogger(__name__)

RiskListener = Callable[[StateChange], Awaitable[None]]
"""Awaited on every trading-state change; must cancel the scope's orders when `cancel_open_orders`."""

_MAX_BACKLOG = 100_000
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TransientError)


class RiskManager:
    """Check every order against the limits and trading states; keep both persisted.

    - `check(order, context)`: accept or refuse a new order (from a strategy or a person).
    - `check_cancel(client_id)`: always accepts. Cancels are never blocked, in any state, because
      cancelling only ever lowers risk and is what a halt needs to succeed.
    - `kill(reason)`: halt the account, persist it, and await every listener with a change whose
      `cancel_open_orders` is True: the engine cancels all working orders through the broker.
    - `release(reason)`: a person returns the account (and strategies) to active.
    - `on_equity(scope, equity)`: daily loss and drawdown limits move scopes to reducing or halted.
    - `set_limits(scope, limits)`: change limits at run time (persisted first, then applied).

    Only the account state (`"*"`) is persisted; a strategy's reducing/halted state is rebuilt
    after a restart from its equity snapshots by `open` (a strategy released by hand before the
    restart is therefore judged again, and halted again if its losses still breach its limits).
    """

    def __init__(self, store: RiskStore, clock: Clock, core: RiskCore | None = None) -> None:
        self._store = store
        self._clock = clock
        self.core = core or RiskCore()
        self._listeners: list[RiskListener] = []
        self._backlog: list[Refusal] = []
        self._flusher: asyncio.Task[None] | None = None
        self._state_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self.dropped_refusals = 0

    @classmethod
    async def open(cls, store: RiskStore, clock: Clock) -> RiskManager:
        """Return a manager with the persisted limits and account state, and equity marks rebuilt."""
        stored = await store.load_state()
        core = RiskCore(await store.load_limits(), stored.state, stored.reason)
        manager = cls(store, clock, core)
        now = clock.now_ns()
        # Only an active state's start is a release to measure losses from; otherwise (or when the
        # row predates the clock, as after a migration in replay) measure over the whole history.
        released = stored.since_ns if stored.state is TradingState.ACTIVE and stored.since_ns <= now else 0
        changes = core.restore_marks(await store.load_marks(now, released), now)
        for change in changes:
            log.warning("risk: after restart %s is %s: %s", change.scope, change.state, change.reason)
        if any(change.scope == GLOBAL for change in changes):
            await manager._persist_state()
        return manager

    def add_listener(self, listener: RiskListener) -> None:
        """Await `listener` on every trading-state change (after it is persisted)."""
        self._listeners.append(listener)

    @property
    def state(self) -> TradingState:
        """Return the account trading state."""
        return self.core.state(GLOBAL)

    # -- the gateway -------------------------------------------------------------------------

    def check(self, order: Order, context: RiskContext, *, expected_price: Decimal | None = None) -> RiskDecision:
        """Return whether `order` may be sent now; record a refusal (rule and reason) if not.

        `expected_price` is where a market order is expected to fill (e.g. the next bar's open or
        the touch); without it a market order is valued at the last trade and not collared.
        """
        now = self._clock.now_ns()
        decision = self.core.check(order, context, now, expected_price=expected_price)
        if not decision.accepted:
            assert decision.rule is not None
            log.info(
                "risk refused %s (%s %s): %s: %s",
                order.client_id,
                order.strategy,
                order.symbol,
                decision.rule,
                decision.reason,
            )
            self._queue(
                Refusal(now, order.client_id, order.strategy, order.symbol, decision.rule.value, decision.reason)
            )
        return decision

    def check_cancel(self, client_id: str) -> RiskDecision:
        """Return acceptance: a cancel is never blocked, whatever the state or limits."""
        return ACCEPTED

    # -- states ------------------------------------------------------------------------------

    async def kill(self, reason: str) -> StateChange:
        """Halt the account at once, persist it, and have listeners cancel every working order.

        Returns the change (`cancel_open_orders` is True), even when already halted: pressing the
        kill switch again cancels whatever is still working.
        """
        now = self._clock.now_ns()
        why = f"kill switch: {reason}"
        previous = self.core.state(GLOBAL)
        change = self.core.set_state(GLOBAL, TradingState.HALTED, why, now) or StateChange(
            GLOBAL, previous, TradingState.HALTED, why, now
        )
        log.critical("risk: KILL SWITCH: %s", reason)
        await self._apply([change])
        return change

    async def set_state(self, state: TradingState, reason: str) -> StateChange | None:
        """Put the account in `state` by hand (e.g. reducing-only to wind down); return the change."""
        if state is TradingState.ACTIVE:
            changes = await self.release(reason)
            return next((c for c in changes if c.scope == GLOBAL), None)
        change = self.core.set_state(GLOBAL, state, reason, self._clock.now_ns())
        await self._apply([change] if change else [], persist=True)
        return change

    async def release(self, reason: str, *, strategy: str | None = None) -> list[StateChange]:
        """Return the account and all strategies (or one strategy) to active, restarting their loss measures."""
        changes = self.core.release(reason, self._clock.now_ns(), strategy)
        log.warning("risk: released %s: %s", strategy or "all", reason)
        await self._apply(changes, persist=strategy is None)
        return changes

    async def on_equity(self, scope: str, equity: Decimal, time_ns: int | None = None) -> StateChange | None:
        """Record the equity of `scope` (`"*"` for the account); apply the state change a loss limit causes."""
        now = self._clock.now_ns() if time_ns is None else time_ns
        change = self.core.on_equity(scope, equity, now)
        if change is not None:
            log.error("risk: %s is %s: %s", scope, change.state, change.reason)
            await self._apply([change])
        return change

    # -- limits ------------------------------------------------------------------------------

    def limits(self, scope: str = GLOBAL) -> RiskLimits:
        """Return the limits of `scope`."""
        return self.core.limits(scope)

    async def set_limits(self, scope: str, limits: RiskLimits | None) -> StateChange | None:
        """Persist and apply new limits for `scope` (None removes them); return a state change they cause."""
        if not scope:
            raise ParameterError("a risk scope needs a name ('*' for the account)")
        now = self._clock.now_ns()
        if limits is None:
            await self._store.delete_limits(scope)
        else:
            await self._store.save_limits(scope, limits, now)
        change = self.core.set_limits(scope, limits, now)
        log.info("risk: limits of %s set to %s", scope, None if limits is None else limits.to_json())
        if change is not None:
            await self._apply([change])
        return change

    # -- persistence -------------------------------------------------------------------------

    async def _apply(self, changes: list[StateChange], *, persist: bool = False) -> None:
        """Persist the account state, then await the listeners, even when persisting failed.

        A halt takes effect in memory first and its cancels go out even with the database down;
        the persistence error is raised after the listeners ran.
        """
        failure: TransientError | None = None
        if persist or any(change.scope == GLOBAL for change in changes):
            try:
                await self._persist_state()
            except _DB_ERRORS as exc:
                log.critical("risk: cannot persist the trading state %s: %s", self.state, exc)
                failure = TransientError(f"trading state {self.state} applied but not persisted: {exc}")
                failure.__cause__ = exc
        errors: list[Exception] = []
        for change in changes:
            for listener in self._listeners:
                try:
                    await listener(change)
                except Exception as exc:  # every listener must run; the first error is raised below
                    log.exception("risk: listener %r failed on %s", listener, change)
                    errors.append(exc)
        if failure is not None:
            raise failure
        if errors:
            raise errors[0]

    async def _persist_state(self) -> None:
        async with self._state_lock:
            await self._store.save_state(self.core.state(GLOBAL), self.core.reason(GLOBAL), self._clock.now_ns())

    def _queue(self, refusal: Refusal) -> None:
        if len(self._backlog) >= _MAX_BACKLOG:
            del self._backlog[0]
            self.dropped_refusals += 1
            log.error("risk: refusal backlog full; %d refusals not recorded", self.dropped_refusals)
        self._backlog.append(refusal)
        if self._flusher is None or self._flusher.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a synchronous caller): `flush` writes the backlog later
            self._flusher = loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self._write_backlog()
        except _DB_ERRORS as exc:
            log.error("risk: cannot record %d refusals yet (%s); kept for the next attempt", len(self._backlog), exc)

    async def _write_backlog(self) -> None:
        async with self._write_lock:
            while self._backlog:
                batch, self._backlog = self._backlog[:1000], self._backlog[1000:]
                try:
                    await self._store.record_refusals(batch)
                except BaseException:
                    self._backlog[:0] = batch
                    raise

    async def flush(self) -> None:
        """Write every queued refusal; raise if the database cannot take them."""
        await self._write_backlog()

    async def close(self) -> None:
        """Write the queued refusals."""
        await self.flush()
