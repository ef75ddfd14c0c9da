"""Group commit: a close's acknowledgements, and a bar's fills, each reach PostgreSQL in one statement, rules intact."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from framework.engine.order_store import OrderChange
from framework.orders.model import OrderStatus
from framework.storage import Database
from tests.engine.helpers import Rig, intent, stored_fills

S = OrderStatus


def count_writes(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Return a list that gets the size of every batch of changes the order manager writes."""
    writes: list[int] = []
    write = rig.manager.store.write_changes

    async def counted(changes: Sequence[OrderChange]) -> None:
        if changes:
            writes.append(len(changes))
        await write(changes)

    monkeypatch.setattr(rig.manager.store, "write_changes", counted)
    return writes


async def test_a_close_of_orders_is_acknowledged_in_one_statement_and_filled_in_another(
    oms: Rig, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await oms.feed(0, 100, symbols=("X", "Y"))
    writes = count_writes(oms, monkeypatch)
    orders = await oms.manager.submit_many([intent("buy", "1", strategy=f"s{k}") for k in range(20)])
    await oms.manager.idle()
    assert [o.status for o in orders] == [S.ACCEPTED] * 20
    assert writes == [20]

    writes.clear()
    await oms.feed(1, 101, symbols=("X", "Y"))
    assert writes == [20]  # twenty fills, with their orders and events
    assert len(await stored_fills(database.pool)) == 20
    assert oms.manager.positions.net_positions() == {"X": Decimal(20)}
    for order in orders:
        history = await oms.manager.store.events(order.client_id)
        assert [e.status for e in history] == ["new", "accepted", "filled"]
    assert len(oms.fills_seen) == 20
    assert oms.manager.alerts == []


async def test_a_batch_with_a_fill_the_database_holds_is_applied_one_by_one_and_that_fill_never_twice(
    oms: Rig, database: Database
) -> None:
    await oms.feed(0, 100)
    first, second = await oms.manager.submit_many([intent("buy", "1"), intent("buy", "2", strategy="s2")])
    # The venue's next trade id is main-T1, for `first` (buys fill in acceptance order): plant it,
    # as a run that stored the fill and died before applying it would have left it.
    await database.pool.execute(
        "INSERT INTO fills (venue, fill_id, client_id, strategy, symbol, side, quantity, price, fee, mode, time) "
        "VALUES ('paper', 'main-T1', $1, 's1', 'X', 'buy', 1, 100, 0, 'paper', now())",
        first.client_id,
    )
    await oms.feed(1, 100)
    assert oms.manager.orders[second.client_id].status is S.FILLED
    assert oms.manager.orders[first.client_id].status is S.ACCEPTED  # stored, not applied: reconciliation's work
    assert oms.manager.positions.position("s2", "X").quantity == Decimal(2)
    assert oms.manager.positions.position("s1", "X").quantity == Decimal(0)
    assert sorted(f.fill_id for f in await stored_fills(database.pool)) == ["main-T1", "main-T2"]
