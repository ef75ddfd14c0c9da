"""The risk manager: one gateway every order passes before any broker, and the trading state."""

from framework.risk.context import LastTrade, RiskContext, RiskSnapshot
from framework.risk.core import RiskCore
from framework.risk.decision import ACCEPTED, RiskDecision, RiskRefusedError, Rule
from framework.risk.gateway import RiskListener, RiskManager
from framework.risk.limits import GLOBAL, RateLimit, RiskLimits
from framework.risk.state import EquityMark, StateChange, TradingState
from framework.risk.store import Refusal, RiskStore, StoredState

__all__ = [
    "ACCEPTED",
    "GLOBAL",
    "EquityMark",
    "LastTrade",
    "RateLimit",
    "Refusal",
    "RiskContext",
    "RiskCore",
    "RiskDecision",
    "RiskLimits",
    "RiskListener",
    "RiskManager",
    "RiskRefusedError",
    "RiskSnapshot",
    "RiskStore",
    "Rule",
    "StateChange",
    "StoredState",
    "TradingState",
]
