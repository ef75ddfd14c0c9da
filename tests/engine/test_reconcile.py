"""Reconciliation at start: the database against the venue after a restart, repairs and failures."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from framework.brokers.paper import PaperBroker
from framework.brokers.paper_faults import Fault, FaultKind
from framework.clock import SimulatedClock
from framework.engine.order_store import OrderStore
from framework.orders.model import Mode, Order, OrderSide, OrderStatus, OrderType
from framework.storage import Database
from tests.engine.conftest import MakeRig
from tests.engine.helpers import DAY, T0, VENUE, Rig, flat, intent, paper, status_of, stored_fills

S = OrderStatus


class NoFillHistory(PaperBroker):
    """A paper venue that cannot list an order's fills (like a venue adapter without a trade history call)."""

    fills = None  # type: ignore[assignment]


async def restart(make_oms: MakeRig, rig: Rig, **options: Any) -> Rig:
    """Close `rig` and start a new manager and venue on the same database and venue directory."""
    await rig.close()
    return await make_oms(rig.directory, clock=rig.clock, start=False, **options)


async def commit_intent(pool: Any, side: str = "buy", qty: str = "2") -> str:
    """Commit an intent the way the manager does, and stop there (a crash right after the commit)."""
    store = OrderStore(pool)
    [cid] = await store.insert_intents(
        await store.client_prefix(), [intent(side, qty)], venue=VENUE, mode=Mode.PAPER, time_ns=T0 + DAY
    )
    return cid


def order_for(cid: str, qty: str = "2", side: str = "buy") -> Order:
    return Order(cid, "s1", VENUE, "X", OrderSide(side), Decimal(qty), mode=Mode.PAPER)


async def test_a_clean_restart_reconciles_without_differences(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms()
    await rig.feed(0, 100)
    filled, resting = await rig.manager.submit_many([intent("buy", "3"), intent("buy", "1", limit="90")])
    await rig.feed(1, 100)

    again = await restart(make_oms, rig)
    report = await again.manager.start()
    assert report.ok, report.reason
    assert report.differences == ()
    assert report.checked_orders == 1
    assert again.manager.orders[resting.client_id].status is S.ACCEPTED
    assert again.manager.positions.net_positions() == {"X": Decimal(3)}
    assert report.local_positions == report.venue_positions == {"X": Decimal(3)}
    assert again.manager.risk_context.position("s1", "X") == Decimal(3)
    assert again.manager.risk_context.open_orders("s1") == 1
    row = await database.pool.fetchrow("SELECT ok, differences FROM reconciliations WHERE id = $1", report.id)
    assert row["ok"] is True
    assert json.loads(row["differences"]) == []
    assert filled.client_id not in again.manager.orders  # ended orders are not loaded


async def test_an_intent_never_sent_before_the_restart_is_rejected(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms(start=False)
    cid = await commit_intent(database.pool)
    report = await rig.manager.start()
    assert report.ok, report.reason
    assert report.rejected == (cid,)
    assert [d.kind for d in report.differences] == ["not_sent"]
    assert rig.manager.orders[cid].reason.startswith("not sent before restart")
    assert await status_of(database.pool, cid) == "rejected"


async def test_an_intent_sent_just_before_the_crash_is_adopted_with_its_fills(
    make_oms: MakeRig, database: Database, tmp_path: Path
) -> None:
    clock = SimulatedClock(T0 + DAY)
    venue = paper(tmp_path / "venue", clock)
    await venue.connect()
    venue.on_bar(flat(0, 100))
    cid = await commit_intent(database.pool)
    await venue.submit(order_for(cid))  # the venue got it; the process died before recording the answer
    clock.advance_to(T0 + 2 * DAY)
    venue.on_bar(flat(1, 100))  # and it filled while the process was down
    await venue.close()

    rig = await make_oms(tmp_path / "venue", clock=clock, start=False)
    report = await rig.manager.start()
    assert report.ok, report.reason
    assert [f.client_id for f in report.adopted_fills] == [cid]
    assert {d.kind for d in report.differences} == {"adopted_fill", "adopted_status"}
    assert rig.manager.orders[cid].status is S.FILLED
    assert await status_of(database.pool, cid) == "filled"
    assert rig.manager.positions.net_positions() == {"X": Decimal(2)}
    history = [e.status for e in await rig.manager.store.events(cid)]
    assert history == ["new", "submitted", "filled", "filled"]  # the last one records the venue's order id
    assert rig.manager.orders[cid].venue_order_id is not None


async def test_without_a_fill_history_the_fill_is_synthesized_from_the_venue_order(
    make_oms: MakeRig, database: Database, tmp_path: Path
) -> None:
    clock = SimulatedClock(T0 + DAY)
    venue = paper(tmp_path / "venue", clock)
    await venue.connect()
    venue.on_bar(flat(0, 100))
    cid = await commit_intent(database.pool, qty="4")
    await venue.submit(order_for(cid, qty="4"))
    clock.advance_to(T0 + 2 * DAY)
    venue.on_bar(flat(1, 101))
    await venue.close()

    rig = await make_oms(tmp_path / "venue", clock=clock, start=False, broker_cls=NoFillHistory)
    report = await rig.manager.start()
    assert report.ok, report.reason
    [synthesized] = report.synthesized_fills
    assert synthesized.fill_id == f"{cid}-recon-4"
    assert (synthesized.quantity, synthesized.price) == (Decimal(4), Decimal(101))
    assert "synthesized_fill" in {d.kind for d in report.differences}
    assert [a.kind for a in rig.manager.alerts] == ["synthesized_fill"]
    assert [f.fill_id for f in await stored_fills(database.pool)] == [synthesized.fill_id]
    assert rig.manager.positions.net_positions() == {"X": Decimal(4)}


async def test_an_open_order_unknown_to_the_database_fails_reconciliation(make_oms: MakeRig) -> None:
    rig = await make_oms()
    await rig.feed(0, 100)
    await rig.broker.submit(order_for("planted1", qty="1").evolve(type=OrderType.LIMIT, limit_price=Decimal(90)))
    again = await restart(make_oms, rig)
    report = await again.manager.start()
    assert not report.ok
    assert [d.kind for d in report.failures] == ["unknown_venue_order"]
    assert "planted1" in report.reason
    assert report.reason.startswith("reconciliation failed (1 differences): the venue has open order planted1")


async def test_positions_that_differ_fail_reconciliation(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms()
    await rig.feed(0, 100)
    order = await rig.manager.submit(intent("buy", "3"))
    await rig.feed(1, 100)
    await database.pool.execute("DELETE FROM fills WHERE client_id = $1", order.client_id)
    again = await restart(make_oms, rig)
    report = await again.manager.start()
    assert not report.ok
    assert [d.kind for d in report.failures] == ["position"]
    assert "X: local fills sum to 0, the venue holds 3" in report.reason


async def test_a_late_fill_made_while_down_is_adopted(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms()
    await rig.feed(0, 100)
    order = await rig.manager.submit(intent("buy", "5"))
    rig.broker.faults.add(Fault(FaultKind.LATE_FILL))
    await rig.manager.cancel(order.client_id)
    await rig.manager.close()
    rig.clock.advance_to(T0 + 2 * DAY)
    rig.broker.on_bar(flat(1, 100))  # the venue fills the cancelled order while the manager is down
    again = await restart(make_oms, rig)
    report = await again.manager.start()
    assert report.ok, report.reason
    assert [f.client_id for f in report.adopted_fills] == [order.client_id]
    assert again.manager.orders[order.client_id].status is S.CANCELLED
    assert again.manager.positions.net_positions() == {"X": Decimal(5)}
    assert len(await stored_fills(database.pool)) == 1


async def test_an_order_the_venue_lost_fails_reconciliation(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms()
    cid = await commit_intent(database.pool)
    await database.pool.execute("UPDATE orders SET status = 'accepted' WHERE client_id = $1", cid)
    await rig.manager.close()
    again = await restart(make_oms, rig)
    report = await again.manager.start()
    assert not report.ok
    assert [d.kind for d in report.failures] == ["venue_lost_order"]
    assert f"{cid} is accepted locally but unknown to the venue" in report.reason
