"""The paper venue is a venue: its state outlives the runner (and the broker object) that used it."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from framework.brokers.errors import DuplicateOrder
from framework.brokers.paper_faults import Fault, FaultKind
from framework.brokers.paper_store import Changeset, PaperStore
from framework.errors import IntegrityError
from framework.execution import ExecutionModel
from framework.orders.model import Fill, OrderStatus
from tests.brokers.paper_helpers import DAY, T0, Venue, flat, kinds, order


async def test_new_broker_on_the_same_directory_sees_orders_positions_and_cash(tmp_path: Path) -> None:
    v = Venue(tmp_path, options={"model": ExecutionModel(cash=10_000.0, fees=0.001)})
    await v.broker.connect()
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "10", client_id="done"))
    v.feed(flat(1, 100))
    await v.broker.submit(order("sell", "4", client_id="pending"))
    await v.broker.submit(order("buy", "1", limit="90.00", client_id="resting"))
    before = (await v.broker.balances(), await v.broker.positions(), await v.broker.fills())
    await v.broker.close()

    restarted = v.open(cash=1.0)  # a new seed does not overwrite an existing venue
    await restarted.connect()
    assert (await restarted.balances(), await restarted.positions(), await restarted.fills()) == before
    assert before[0] == {"USD": Decimal("10000.0") - 1000 - 1}
    done = await restarted.query("done")
    assert done is not None
    assert (done.status, done.filled, done.fill_ids) == (OrderStatus.FILLED, Decimal(10), frozenset({"main-T1"}))
    assert [o.client_id for o in await restarted.open_orders()] == ["pending", "resting"]
    with pytest.raises(DuplicateOrder):
        await restarted.submit(order("buy", "1", client_id="done"))

    restarted.on_bar(flat(2, 110))
    v.clock.advance_to(T0 + 3 * DAY)
    sold = await restarted.query("pending")
    assert sold is not None
    assert (sold.status, sold.avg_price) == (OrderStatus.FILLED, Decimal("110.0"))  # the pending order filled
    assert await restarted.positions() == {"X": Decimal(6)}
    await restarted.close()


async def test_state_survives_a_broker_that_was_never_closed(tmp_path: Path) -> None:
    # A killed runner never closes anything: every change is committed when the call returns.
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "5", client_id="a"))
    v.feed(flat(1, 100))
    await v.broker.submit(order("buy", "1", client_id="b"))

    other = v.open()
    await other.connect()
    assert await other.positions() == {"X": Decimal(5)}
    assert [o.client_id for o in await other.open_orders()] == ["b"]
    fills = other.on_bar(flat(2, 101))
    assert [e.client_id for e in fills if isinstance(e, Fill)] == ["b"]
    await other.close()
    await v.broker.close()


async def test_ids_keep_counting_after_a_restart(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    first = await v.broker.submit(order(client_id="one"))
    await v.broker.close()
    again = v.open()
    await again.connect()
    second = await again.submit(order(client_id="two"))
    assert (first.venue_order_id, second.venue_order_id) == ("main-O1", "main-O2")
    await again.close()


async def test_a_cancelled_order_that_will_fill_late_still_fills_after_a_restart(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "2", client_id="late"))
    v.broker.faults.add(Fault(FaultKind.LATE_FILL))
    await v.broker.cancel("late")
    await v.broker.close()

    again = v.open()
    await again.connect()
    assert await again.open_orders() == []
    assert kinds(again.on_bar(flat(1, 100))) == ["fill:late"]
    await again.close()


async def test_accounts_in_one_directory_are_independent(tmp_path: Path) -> None:
    alice = Venue(tmp_path, options={"account": "alice"})
    bob = Venue(tmp_path, options={"account": "bob", "cash": {"USD": 5, "EUR": 7}})
    for v in (alice, bob):
        await v.broker.connect()
    await alice.broker.submit(order(client_id="same"))
    await bob.broker.submit(order(client_id="same"))  # client ids are unique per account
    assert await alice.broker.balances() == {"USD": Decimal("10000.0")}
    assert await bob.broker.balances() == {"USD": Decimal(5), "EUR": Decimal(7)}
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == ["alice.sqlite3", "bob.sqlite3"]
    for v in (alice, bob):
        await v.broker.close()


async def test_a_failed_change_leaves_store_and_memory_as_they_were(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "1", client_id="a"))
    blocker = sqlite3.connect(v.broker.path)
    blocker.execute("CREATE TRIGGER no_fills BEFORE INSERT ON fills BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    blocker.close()
    with pytest.raises(IntegrityError, match="disk says no"):
        v.feed(flat(1, 100))
    assert await v.broker.positions() == {}
    assert await v.broker.balances() == {"USD": Decimal("10000.0")}
    assert [o.client_id for o in await v.broker.open_orders()] == ["a"]
    await v.broker.close()


async def test_submits_that_arrive_together_are_committed_once_and_answered_after_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    commits: list[int] = []
    write = PaperStore.write

    def counted(store: PaperStore, changes: Changeset) -> None:
        commits.append(len(changes.orders))
        write(store, changes)

    monkeypatch.setattr(PaperStore, "write", counted)
    answers = await asyncio.gather(*(v.broker.submit(order(client_id=f"o{k}")) for k in range(5)))
    assert [a.status for a in answers] == [OrderStatus.ACCEPTED] * 5
    assert commits == [5]  # one transaction for the five
    other = v.open()  # never closed, as after a SIGKILL: every answered submit is on disk
    await other.connect()
    assert [o.client_id for o in await other.open_orders()] == [f"o{k}" for k in range(5)]
    await other.close()
    await v.broker.close()


async def test_a_group_of_submits_that_cannot_be_committed_places_none_of_them(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    await v.broker.connect()
    v.feed(flat(0, 100))
    blocker = sqlite3.connect(v.broker.path)
    blocker.execute("CREATE TRIGGER no_orders BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    blocker.close()
    answers = await asyncio.gather(
        *(v.broker.submit(order(client_id=f"o{k}")) for k in range(3)), return_exceptions=True
    )
    assert [type(a) for a in answers] == [IntegrityError] * 3
    assert await v.broker.open_orders() == []
    assert await v.broker.query("o1") is None
    await v.broker.close()
