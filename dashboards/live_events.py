"""What the API's answers change on the live page: the first snapshot, then batches of stream events.

Pure: `snapshot_update` turns the REST answers read at login into values of the session's
`LiveState`; `sort_events` takes the events queued since the last flush and the state they apply
to, and returns the bars, trades, fills and equity points to stream into the charts and the new values of
the state's parameters (one update per parameter, however many events touched it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboards.live_views import OPEN_STATUSES

__all__ = ["EventBatch", "chart_symbol", "snapshot_update", "sort_events"]

Event = tuple[str, dict[str, Any]]


@dataclass
class EventBatch:
    """What a batch of events changes."""

    bars: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: list[dict[str, Any]] = field(default_factory=list)
    update: dict[str, Any] = field(default_factory=dict)
    """New values of `LiveState` parameters: positions, open_orders, instances, trading_state, limits..."""


def sort_events(
    events: Iterable[Event],
    *,
    positions: Mapping[Any, dict[str, Any]],
    open_orders: Mapping[str, dict[str, Any]],
    instances: Mapping[str, dict[str, Any]],
) -> EventBatch:
    """Return what `events` (channel, data) change, given the current positions, open orders and instances."""
    out = EventBatch()
    new_positions, new_orders, new_instances = dict(positions), dict(open_orders), dict(instances)
    changed: set[str] = set()
    for channel, data in events:
        if channel.startswith("bars:"):
            out.bars.append(data)
        elif channel.startswith("ticks:"):
            out.ticks.append(data)
        elif channel == "fills":
            out.fills.append(data)
        elif channel == "equity":
            if data.get("strategy") == "*":  # the account; the instances' own curves are not charted
                out.equity.append(data)
        elif channel == "positions":
            new_positions[(data["strategy"], data["symbol"])] = data
            changed.add("positions")
        elif channel == "orders":
            if data["status"] in OPEN_STATUSES:
                new_orders[data["client_id"]] = data
            else:
                new_orders.pop(data["client_id"], None)
            changed.add("open_orders")
        elif channel == "strategies":
            new_instances[data["id"]] = data
            changed.add("instances")
        elif channel == "risk" and data.get("scope") == "*":
            if data.get("kind") == "state":
                out.update["trading_state"] = data["state"]
                out.update["trading_reason"] = data.get("reason", "")
            elif data.get("kind") == "limits":
                out.update["limits"] = data.get("limits") or {}
    if "positions" in changed:
        out.update["positions"] = new_positions
    if "open_orders" in changed:
        out.update["open_orders"] = new_orders
    if "instances" in changed:
        out.update["instances"] = new_instances
    return out


def snapshot_update(
    *,
    account: dict[str, Any] | None,
    limits: dict[str, Any] | None,
    positions: list[dict[str, Any]] | None,
    fills: dict[str, Any] | None,
    orders: Iterable[dict[str, Any] | None],
    risk: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the `LiveState` values of the REST answers read at login (None: the call failed)."""
    update: dict[str, Any] = {
        "account": account or {},
        "limits": (limits or {}).get("limits", {}),
        "positions": {(p["strategy"], p["symbol"]): p for p in positions or []},
        "fills": list((fills or {}).get("items", [])),
        "open_orders": {o["client_id"]: o for page in orders if page for o in page["items"]},
    }
    if risk:
        update |= {"trading_state": risk["state"], "trading_reason": risk["reason"]}
    return update


def chart_symbol(instances: list[dict[str, Any]], tradable: list[str]) -> str | None:
    """Return the instrument to chart first: the first one of the first running strategy instance."""
    running = [i for i in instances if i["state"] == "running"]
    for candidate in (*running, *instances):
        if candidate["symbols"]:
            return str(candidate["symbols"][0])
    return tradable[0] if tradable else None
