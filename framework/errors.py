"""The one exception tree of rata.

Every error rata raises on purpose derives from `RataError`, in four families that tell the caller
what to do about it:

- `TransientError`: retry with backoff (a timeout, a dropped connection, a 5xx, a rate limit).
- `RejectedError`: surface to the caller and do not retry (bad input, an out-of-bounds parameter,
  an order refused by risk or by the venue).
- `StrategyError`: isolate the strategy that raised it; the rest of the system goes on.
- `FatalError`: stop, then reconcile (an integrity violation, a corrupted state).
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "FatalError",
    "IntegrityError",
    "LookaheadError",
    "ParameterError",
    "RataError",
    "RejectedError",
    "StrategyError",
    "TransientError",
    "UnknownNameError",
]


class RataError(Exception):
    """Base class of every error rata raises on purpose."""


class TransientError(RataError):
    """A temporary failure: retry with backoff."""


class RejectedError(RataError):
    """A request that was refused: surface it to the caller, do not retry."""


class ParameterError(RejectedError, ValueError):
    """A strategy or execution parameter is missing, of the wrong type or out of bounds."""


class UnknownNameError(RejectedError, LookupError):
    """A strategy, dataset, instrument or parameter name that does not exist."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.valid = tuple(valid)
        choices = ", ".join(self.valid) if self.valid else "(none)"
        super().__init__(f"unknown {kind} {name!r}; valid: {choices}")


class DataError(RejectedError, ValueError):
    """Market data that cannot be used as given (missing columns, bad index, non-finite prices)."""


class StrategyError(RataError):
    """A strategy raised or returned something invalid; isolate it."""


class LookaheadError(StrategyError):
    """A strategy's signals depend on data after the bar they are for."""


class FatalError(RataError):
    """A failure that must stop the process before anything else happens."""


class IntegrityError(FatalError):
    """Stored or derived state contradicts itself; stop and reconcile."""
