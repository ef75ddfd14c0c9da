"""The risk gateway's answer: accepted, or refused by one named rule with a human reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from framework.errors import RejectedError

__all__ = ["ACCEPTED", "RiskDecision", "RiskRefusedError", "Rule"]


class Rule(StrEnum):
    """The stable, machine-readable code of the rule that refused an order."""

    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    STALE_DATA = "stale_data"
    NO_PRICE = "no_price"
    PRICE_COLLAR = "price_collar"
    MAX_POSITION_QTY = "max_position_qty"
    MAX_POSITION_NOTIONAL = "max_position_notional"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_OPEN_ORDERS = "max_open_orders"
    RATE_LIMIT = "rate_limit"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """Whether an order may go to a broker.

    A refusal names its `rule`, the `scope` whose limit or state refused it (`"*"` for the account,
    else the strategy's name) and a `reason` a person can read.
    """

    accepted: bool
    rule: Rule | None = None
    reason: str = ""
    scope: str | None = None

    @classmethod
    def refuse(cls, rule: Rule, reason: str, scope: str) -> RiskDecision:
        """Return a refusal."""
        return cls(False, rule, reason, scope)

    def raise_if_refused(self) -> None:
        """Raise `RiskRefusedError` if this is a refusal."""
        if not self.accepted:
            assert self.rule is not None
            raise RiskRefusedError(self.rule, self.reason, self.scope or "")


ACCEPTED = RiskDecision(True)


class RiskRefusedError(RejectedError):
    """An order the risk manager refused (surface to the caller; do not retry as is)."""

    def __init__(self, rule: Rule, reason: str, scope: str) -> None:
        self.rule = rule
        self.reason = reason
        self.scope = scope
        super().__init__(f"{rule}: {reason}")
