"""The strategy service behind the strategy routes: classes, and instances created and driven at run time.

An instance created here is stored (`strategy_instances`) and registered with the running engine
at once; starting, stopping and pausing go through `StrategyEngine.set_state` (persisted, and
published to the `strategies` channel by the engine's state listener), parameter changes through
`set_params`, validated by the class's own declarations.
"""

from __future__ import annotations

from decimal import Decimal

from framework.engine.instances import InstanceSpec, InstanceState
from framework.registry import strategy_classes
from framework.timeframes import TIMEFRAMES
from runner.api.convert import instance_out
from runner.api.errors import ApiError, in_body
from runner.api.schemas import InstanceCreate, InstanceOut, ParamDecl, StrategyClassOut
from runner.service import Runner

__all__ = ["create", "describe_classes", "instance", "instances", "set_params", "set_state"]


def describe_classes() -> list[StrategyClassOut]:
    """Return every strategy class with its parameter declarations."""
    out = []
    for _, cls in sorted(strategy_classes().items()):
        info = cls.describe()
        out.append(
            StrategyClassOut(
                name=info["name"],
                class_name=info["class"],
                summary=info["summary"],
                doc=info["doc"],
                params=[ParamDecl(**p) for p in info["params"]],
            )
        )
    return out


def instance(runner: Runner, instance_id: str) -> InstanceOut:
    """Return one instance with its run counters (404 `unknown_strategy_instance`)."""
    assert runner.engine is not None
    spec = runner.engine.get(instance_id)
    running = runner.engine.instances[instance_id]
    return instance_out(spec, running.decisions, running.last_decision_ns)


def instances(runner: Runner) -> list[InstanceOut]:
    """Return every instance of this runner's venue, by id."""
    assert runner.engine is not None
    return [instance(runner, instance_id) for instance_id in sorted(runner.engine.instances)]


async def create(runner: Runner, body: InstanceCreate) -> InstanceOut:
    """Store a new instance and register it with the engine in the requested state."""
    engine, orders = runner.engine, runner.orders
    assert engine is not None
    assert orders is not None
    if body.id in engine.instances:
        raise ApiError(409, "instance_exists", f"a strategy instance named {body.id!r} exists already")
    unknown = [s for s in body.symbols if s not in engine.instruments]
    if unknown:
        raise ApiError(422, "unknown_symbol", f"{unknown[0]!r} is not traded on {orders.venue}")
    if body.timeframe not in TIMEFRAMES:
        raise ApiError(422, "unknown_timeframe", f"timeframe must be one of {', '.join(TIMEFRAMES)}")
    capital = body.capital
    if not capital.is_finite():
        raise ApiError(422, "non_finite_capital", f"capital must be a finite number, got {capital}")
    if capital <= 0 or capital.adjusted() >= 15:
        raise ApiError(422, "invalid_capital", f"capital must be positive and below 1e15, got {capital}")
    with in_body():
        spec = InstanceSpec.create(
            body.id,
            body.strategy,
            body.symbols,
            params=dict(body.params),
            venue=orders.venue,
            timeframe=body.timeframe,
            capital=Decimal(capital),
        ).evolve(state=InstanceState(body.state))
    if engine.store is not None:
        await engine.store.add(spec)
    await engine.add(spec, end_ns=runner.clock.now_ns())
    runner.events.publish_instance(spec)
    return instance(runner, spec.id)


async def set_state(runner: Runner, instance_id: str, state: InstanceState) -> InstanceOut:
    """Start, stop or pause an instance (starting a disabled one re-enables it)."""
    assert runner.engine is not None
    runner.engine.get(instance_id)
    await runner.engine.set_state(instance_id, state)
    return instance(runner, instance_id)


async def set_params(runner: Runner, instance_id: str, params: dict[str, bool | int | float | str]) -> InstanceOut:
    """Change some parameters (the class's bounds and checks apply); return the instance."""
    assert runner.engine is not None
    runner.engine.get(instance_id)
    with in_body():
        spec = await runner.engine.set_params(instance_id, params)
    runner.events.publish_instance(spec)
    return instance(runner, instance_id)
