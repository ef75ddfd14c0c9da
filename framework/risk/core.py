"""The risk manager's pure core: limits, trading states, rate windows and equity marks, in memory.

`RiskCore` does no I/O and reads no clock: every method takes the time it runs at. Tests drive it
synchronously; `RiskManager` wraps it with the clock, persistence and the engine's callbacks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal

from framework.errors import ParameterError
from framework.orders.model import Order
from framework.risk.checks import OrderFacts, check_rate, check_scope, fmt, reduces
from framework.risk.context import RiskContext
from framework.risk.decision import ACCEPTED, RiskDecision, Rule
from framework.risk.limits import GLOBAL, RiskLimits
from framework.risk.state import EquityMark, StateChange, TradingState

__all__ = ["RiskCore"]

_NO_LIMITS = RiskLimits()
_ACTIVE = TradingState.ACTIVE
_REDUCING = TradingState.REDUCING
_HALTED = TradingState.HALTED


class RiskCore:
    """Decide on orders and move trading states; the in-memory heart of `RiskManager`.

    Scopes: `GLOBAL` ("*") is the account, any other name a strategy. Both the account's and the
    order's strategy's limits and states apply to every order. The account state is the one that
    persists (`risk_state`); strategy states follow from their own loss limits and releases.
    """

    def __init__(
        self,
        limits: Mapping[str, RiskLimits] | None = None,
        state: TradingState = _ACTIVE,
        reason: str = "",
    ) -> None:
        self._limits: dict[str, RiskLimits] = dict(limits or {})
        self._states: dict[str, TradingState] = {GLOBAL: state}
        self._reasons: dict[str, str] = {GLOBAL: reason}
        self._sent: dict[str, deque[int]] = {}
        self._marks: dict[str, EquityMark] = {}

    # -- reading -----------------------------------------------------------------------------

    def limits(self, scope: str = GLOBAL) -> RiskLimits:
        """Return the limits of `scope` (no limits when none were set)."""
        return self._limits.get(scope, _NO_LIMITS)

    def all_limits(self) -> dict[str, RiskLimits]:
        """Return every scope's limits that were set."""
        return dict(self._limits)

    def state(self, scope: str = GLOBAL) -> TradingState:
        """Return the trading state of `scope`."""
        return self._states.get(scope, _ACTIVE)

    def reason(self, scope: str = GLOBAL) -> str:
        """Return why `scope` is in its state."""
        return self._reasons.get(scope, "")

    def states(self) -> dict[str, tuple[TradingState, str]]:
        """Return the state and reason of the account and of every strategy not active."""
        return {scope: (state, self._reasons.get(scope, "")) for scope, state in self._states.items()}

    def mark(self, scope: str = GLOBAL) -> EquityMark | None:
        """Return the equity mark of `scope`, if any equity was reported for it."""
        return self._marks.get(scope)

    # -- the gateway -------------------------------------------------------------------------

    def check(
        self, order: Order, ctx: RiskContext, now_ns: int, *, expected_price: Decimal | None = None
    ) -> RiskDecision:
        """Return whether `order` may go to a broker now; an accepted order counts toward rate limits."""
        strategy = order.strategy
        own = strategy != GLOBAL
        account_state = self._states[GLOBAL]
        strategy_state = self._states.get(strategy, _ACTIVE) if own else _ACTIVE
        if account_state is _HALTED:
            return RiskDecision.refuse(Rule.HALTED, f"trading is halted: {self._reasons[GLOBAL]}", GLOBAL)
        if strategy_state is _HALTED:
            return RiskDecision.refuse(
                Rule.HALTED, f"strategy {strategy!r} is halted: {self._reasons.get(strategy, '')}", strategy
            )
        facts = OrderFacts(order, ctx, now_ns, expected_price)
        if account_state is _REDUCING or strategy_state is _REDUCING:
            refusal = self._reducing_only(facts, account_state, strategy_state)
            if refusal is not None:
                return refusal
        account_limits = self._limits.get(GLOBAL)
        strategy_limits = self._limits.get(strategy) if own else None
        if account_limits is not None:
            refusal = check_scope(GLOBAL, account_limits, facts)
            if refusal is not None:
                return refusal
        if strategy_limits is not None:
            refusal = check_scope(strategy, strategy_limits, facts)
            if refusal is not None:
                return refusal
        return self._admit(account_limits, strategy, strategy_limits, now_ns)

    def _reducing_only(
        self, facts: OrderFacts, account_state: TradingState, strategy_state: TradingState
    ) -> RiskDecision | None:
        order = facts.order
        own = facts.ctx.position(order.strategy, order.symbol)
        if reduces(own, facts.signed):
            return None
        if strategy_state is _REDUCING:
            scope, why = order.strategy, self._reasons.get(order.strategy, "")
            what = f"its position in {order.symbol} ({fmt(own)})"
        else:
            net = facts.ctx.position(None, order.symbol)
            if reduces(net, facts.signed):
                return None
            scope, why = GLOBAL, self._reasons[GLOBAL]
            what = f"the strategy's position ({fmt(own)}) or the account's ({fmt(net)}) in {order.symbol}"
        return RiskDecision.refuse(
            Rule.REDUCING_ONLY,
            f"{'trading' if scope == GLOBAL else f'strategy {scope!r}'} is reducing-only ({why}); "
            f"a {order.side} of {fmt(order.quantity)} does not reduce {what}",
            scope,
        )

    def _admit(self, account: RiskLimits | None, strategy: str, own: RiskLimits | None, now_ns: int) -> RiskDecision:
        account_rate = account.rate_limit if account is not None else None
        own_rate = own.rate_limit if own is not None else None
        if account_rate is not None:
            refusal = check_rate(GLOBAL, account_rate, self._window(GLOBAL), now_ns)
            if refusal is not None:
                return refusal
        if own_rate is not None:
            refusal = check_rate(strategy, own_rate, self._window(strategy), now_ns)
            if refusal is not None:
                return refusal
        if account_rate is not None:
            self._sent[GLOBAL].append(now_ns)
        if own_rate is not None:
            self._sent[strategy].append(now_ns)
        return ACCEPTED

    def _window(self, scope: str) -> deque[int]:
        sent = self._sent.get(scope)
        if sent is None:
            sent = self._sent[scope] = deque()
        return sent

    # -- limits and states -------------------------------------------------------------------

    def set_limits(self, scope: str, limits: RiskLimits | None, now_ns: int) -> StateChange | None:
        """Replace (or, with None, remove) the limits of `scope`; return a state change they cause.

        New loss limits are checked against the scope's current equity mark at once.
        """
        if not scope:
            raise ParameterError("a risk scope needs a name ('*' for the account)")
        if limits is None:
            self._limits.pop(scope, None)
            return None
        self._limits[scope] = limits
        mark = self._marks.get(scope)
        return None if mark is None else self._judge(scope, mark, now_ns)

    def set_state(self, scope: str, state: TradingState, reason: str, now_ns: int) -> StateChange | None:
        """Put `scope` in `state` for `reason`; return the change, or None if it was already there."""
        previous = self.state(scope)
        self._reasons[scope] = reason
        if state is previous:
            return None
        if state is _ACTIVE and scope != GLOBAL:
            self._states.pop(scope, None)
        else:
            self._states[scope] = state
        return StateChange(scope, previous, state, reason, now_ns)

    def release(self, reason: str, now_ns: int, strategy: str | None = None) -> list[StateChange]:
        """Return the account and every strategy (or only `strategy`) to active; restart their loss measures.

        Releasing rebases the released scopes' day-start equity and peak on their last equity, so
        losses a person accepted do not halt them again at the next equity update.
        """
        scopes = list(self._states) if strategy is None else [strategy]
        scopes.extend(s for s in self._marks if strategy is None and s not in scopes)
        changes: list[StateChange] = []
        for scope in scopes:
            mark = self._marks.get(scope)
            if mark is not None:
                mark.rebase()
            change = self.set_state(scope, _ACTIVE, reason, now_ns)
            if change is not None:
                changes.append(change)
        return changes

    # -- equity ------------------------------------------------------------------------------

    def on_equity(self, scope: str, equity: Decimal, now_ns: int) -> StateChange | None:
        """Record `scope`'s equity (the account's for "*"); return the state change a breached limit causes."""
        mark = self._marks.get(scope)
        if mark is None:
            mark = self._marks[scope] = EquityMark.first(equity, now_ns)
        else:
            mark.update(equity, now_ns)
        return self._judge(scope, mark, now_ns)

    def restore_marks(self, marks: Iterable[tuple[str, EquityMark]], now_ns: int) -> list[StateChange]:
        """Install equity marks loaded after a restart; return the state changes they imply."""
        changes: list[StateChange] = []
        for scope, mark in marks:
            self._marks[scope] = mark
            change = self._judge(scope, mark, now_ns)
            if change is not None:
                changes.append(change)
        return changes

    def _judge(self, scope: str, mark: EquityMark, now_ns: int) -> StateChange | None:
        limits = self._limits.get(scope)
        if limits is None:
            return None
        who = "account" if scope == GLOBAL else f"strategy {scope!r}"
        target: TradingState | None = None
        why = ""
        loss = mark.daily_loss
        if limits.max_drawdown is not None and mark.drawdown >= limits.max_drawdown:
            target = _HALTED
            why = (
                f"{who} drawdown {fmt(round(mark.drawdown * 100, 2))}% from the peak {fmt(mark.peak)} "
                f"(equity {fmt(mark.last)}) reached the limit of {fmt(limits.max_drawdown * 100)}%"
            )
        elif limits.daily_loss_halt is not None and loss >= limits.daily_loss_halt:
            target = _HALTED
            why = f"{who} daily loss {fmt(loss)} reached the halt limit of {fmt(limits.daily_loss_halt)}"
        elif limits.daily_loss_reduce is not None and loss >= limits.daily_loss_reduce:
            target = _REDUCING
            why = f"{who} daily loss {fmt(loss)} reached the reducing-only limit of {fmt(limits.daily_loss_reduce)}"
        if target is None or target.severity <= self.state(scope).severity:
            return None
        return self.set_state(scope, target, why, now_ns)
