"""Strategy instances: a strategy class, its parameter values, a universe, a timeframe and capital.

Instances live in the `strategy_instances` table, so they survive restarts and can be added,
started, stopped, paused and re-parameterised while the runner runs. Parameters are validated by
the class's own declarations (`framework.params`) before anything is stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg

from framework.errors import ParameterError, UnknownNameError
from framework.registry import get_strategy
from framework.strategy import Strategy, resolve_params
from framework.timeframes import timeframe_ns

__all__ = ["InstanceSpec", "InstanceState", "InstanceStore"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class InstanceState(StrEnum):
    """Whether an instance decides: running (yes), paused (keeps its panel, sends nothing), stopped, disabled."""

    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One strategy instance as stored."""

    id: str
    strategy: str
    params: dict[str, Any]
    venue: str
    symbols: tuple[str, ...]
    timeframe: str
    capital: Decimal
    state: InstanceState = InstanceState.STOPPED
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ParameterError(f"instance id must be 1-63 letters, digits, '_', '.' or '-', got {self.id!r}")
        if not self.symbols:
            raise ParameterError(f"instance {self.id}: the universe is empty")
        if len(set(self.symbols)) != len(self.symbols):
            raise ParameterError(f"instance {self.id}: the universe lists a symbol twice")
        timeframe_ns(self.timeframe)
        if not self.capital.is_finite() or self.capital <= 0:
            raise ParameterError(f"instance {self.id}: capital must be positive, got {self.capital}")

    def build(self) -> Strategy:
        """Return the strategy object (parameters validated by the class's declarations)."""
        return get_strategy(self.strategy)(**self.params)

    def evolve(self, **changes: Any) -> InstanceSpec:
        """Return a copy with `changes`."""
        return replace(self, **changes)

    @classmethod
    def create(
        cls,
        id: str,
        strategy: str,
        symbols: list[str] | tuple[str, ...],
        *,
        params: dict[str, Any] | None = None,
        venue: str = "paper",
        timeframe: str = "1m",
        capital: Decimal | float | str = Decimal(100_000),
    ) -> InstanceSpec:
        """Return a validated new instance (parameters resolved with their defaults and checked)."""
        strategy_cls = get_strategy(strategy)
        built = strategy_cls(**resolve_params(strategy_cls, params or {}))  # bounds and `validate`
        return cls(
            id=id,
            strategy=strategy,
            params=dict(built.values),
            venue=venue,
            symbols=tuple(symbols),
            timeframe=timeframe,
            capital=Decimal(str(capital)),
        )


class InstanceStore:
    """The `strategy_instances` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, spec: InstanceSpec) -> InstanceSpec:
        """Store a new instance; refuse an id already used."""
        try:
            await self._pool.execute(
                """
                INSERT INTO strategy_instances (id, strategy, params, venue, symbols, timeframe, capital, state)
                VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)
                """,
                spec.id,
                spec.strategy,
                json.dumps(spec.params),
                spec.venue,
                list(spec.symbols),
                spec.timeframe,
                spec.capital,
                spec.state.value,
            )
        except asyncpg.UniqueViolationError as exc:
            raise ParameterError(f"a strategy instance named {spec.id!r} exists already") from exc
        return spec

    async def get(self, instance_id: str) -> InstanceSpec:
        """Return one instance or raise `UnknownNameError`."""
        row = await self._pool.fetchrow("SELECT * FROM strategy_instances WHERE id = $1", instance_id)
        if row is None:
            raise UnknownNameError("strategy instance", instance_id, [s.id for s in await self.list()])
        return _spec(row)

    async def list(self) -> list[InstanceSpec]:
        """Return every instance, by id."""
        rows = await self._pool.fetch("SELECT * FROM strategy_instances ORDER BY id")
        return [_spec(r) for r in rows]

    async def set_state(self, instance_id: str, state: InstanceState, error: str | None = None) -> None:
        """Record an instance's state (and its last error, when it is disabled)."""
        status = await self._pool.execute(
            """
            UPDATE strategy_instances SET state = $2, updated_at = now(),
                last_error = CASE WHEN $3::text IS NULL AND $2 = 'disabled' THEN last_error ELSE $3 END
            WHERE id = $1
            """,
            instance_id,
            state.value,
            error,
        )
        if status.endswith(" 0"):
            raise UnknownNameError("strategy instance", instance_id, [s.id for s in await self.list()])

    async def set_params(self, instance_id: str, params: dict[str, Any]) -> InstanceSpec:
        """Change some parameters (validated by the class's declarations); return the new spec."""
        spec = await self.get(instance_id)
        strategy_cls = get_strategy(spec.strategy)
        resolved = strategy_cls(**resolve_params(strategy_cls, {**spec.params, **params})).values
        await self._pool.execute(
            "UPDATE strategy_instances SET params = $2::jsonb, updated_at = now() WHERE id = $1",
            instance_id,
            json.dumps(dict(resolved)),
        )
        return spec.evolve(params=dict(resolved))

    async def remove(self, instance_id: str) -> None:
        """Delete a stopped instance."""
        spec = await self.get(instance_id)
        if spec.state is InstanceState.RUNNING:
            raise ParameterError(f"stop strategy instance {instance_id!r} before removing it")
        await self._pool.execute("DELETE FROM strategy_instances WHERE id = $1", instance_id)


def _spec(row: asyncpg.Record) -> InstanceSpec:
    params = row["params"]
    return InstanceSpec(
        id=row["id"],
        strategy=row["strategy"],
        params=json.loads(params) if isinstance(params, str) else dict(params),
        venue=row["venue"],
        symbols=tuple(row["symbols"]),
        timeframe=row["timeframe"],
        capital=Decimal(row["capital"]),
        state=InstanceState(row["state"]),
        last_error=row["last_error"],
    )
