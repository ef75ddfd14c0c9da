"""The order path: intent committed before the venue sees it, fills persisted, positions from fills, risk, cancels."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from framework.brokers.errors import UnknownOrder
from framework.errors import RejectedError
from framework.orders.model import OrderStatus
from framework.orders.positions import PositionBook
from framework.risk import GLOBAL, RiskLimits
from framework.storage import Database
from tests.engine.conftest import MakeRig
from tests.engine.helpers import VENUE, ObservedBroker, Rig, intent, status_of, stored_fills

S = OrderStatus


async def test_intent_is_committed_before_the_venue_sees_it_and_fills_are_persisted(
    make_oms: MakeRig, database: Database
) -> None:
    rig = await make_oms(broker_cls=ObservedBroker, broker_options={"pool": database.pool})
    broker = rig.broker
    assert isinstance(broker, ObservedBroker)
    await rig.feed(0, 100, symbols=("X", "Y"))
    orders = await rig.manager.submit_many(
        [intent("buy", "10"), intent("buy", "2.5", symbol="Y", strategy="s2"), intent("sell", "3", strategy="s3")]
    )

    assert [o.status for o in orders] == [S.ACCEPTED] * 3
    for order in orders:  # the venue saw every order only after its intent and 'new' event were committed
        row = broker.rows_at_send[order.client_id]
        assert row is not None
        assert (row["status"], row["events"]) == ("new", 1)
    assert row["quantity"] == Decimal(3)

    await rig.feed(1, 101, symbols=("X", "Y"))
    fills = await stored_fills(database.pool)
    assert len(fills) == 3
    assert [await status_of(database.pool, o.client_id) for o in orders] == ["filled"] * 3
    assert rig.manager.positions.net_positions() == PositionBook(fills).net_positions()
    assert (
        rig.manager.positions.net_positions()
        == await broker.positions()
        == {
            "X": Decimal(7),
            "Y": Decimal("2.5"),
        }
    )
    assert rig.manager.positions.position("s3", "X").quantity == Decimal(-3)
    assert sorted(q for _, q in rig.fills_seen) == [Decimal(-3), Decimal("2.5"), Decimal(10)]
    history = await rig.manager.store.events(orders[0].client_id)
    assert [e.status for e in history] == ["new", "accepted", "filled"]
    assert history[0].detail == "test signal"
    assert rig.manager.open_orders() == []
    assert rig.manager.alerts == []


async def test_client_ids_are_the_database_prefix_and_sequence_and_valid_for_binance(
    oms: Rig, database: Database
) -> None:
    orders = await oms.manager.submit_many([intent("buy", "1")] * 5)
    prefix = await database.pool.fetchval("SELECT prefix FROM order_client_prefix")
    ids = [o.client_id for o in orders]
    assert len(set(ids)) == 5
    numbers = [int(cid.removeprefix(prefix)) for cid in ids]
    assert numbers == sorted(numbers)
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9]{1,32}", cid)
        assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", cid)  # Binance's newClientOrderId pattern


async def test_a_reset_database_draws_another_prefix(database: Database) -> None:
    # the prefix is drawn by the migration; a new database (a reset) must not reuse the old ids
    first = await database.pool.fetchval("SELECT prefix FROM order_client_prefix")
    await database.pool.execute("DELETE FROM order_client_prefix")
    await database.pool.execute(
        "INSERT INTO order_client_prefix (prefix) VALUES ('r' || substr(md5(gen_random_uuid()::text), 1, 10))"
    )
    assert await database.pool.fetchval("SELECT prefix FROM order_client_prefix") != first


async def test_a_risk_refusal_is_recorded_with_its_rule_and_nothing_is_sent(oms: Rig, database: Database) -> None:
    await oms.risk.set_limits(GLOBAL, RiskLimits(max_order_qty=Decimal(5)))
    refused, accepted = await oms.manager.submit_many([intent("buy", "10"), intent("buy", "5")])

    assert refused.status is S.REJECTED
    assert refused.reason.startswith("risk max_order_qty: ")
    assert accepted.status is S.ACCEPTED
    assert await oms.broker.query(refused.client_id) is None
    row = await database.pool.fetchrow("SELECT status, reason FROM orders WHERE client_id = $1", refused.client_id)
    assert (row["status"], row["reason"]) == ("rejected", refused.reason)
    await oms.risk.flush()
    rule = await database.pool.fetchval("SELECT rule FROM risk_refusals WHERE client_id = $1", refused.client_id)
    assert rule == "max_order_qty"


async def test_working_orders_count_for_the_risk_limit_from_the_live_book(oms: Rig) -> None:
    await oms.risk.set_limits("s1", RiskLimits(max_open_orders=2))
    orders = await oms.manager.submit_many([intent("buy", "1", limit="90")] * 3)
    assert [o.status for o in orders] == [S.ACCEPTED, S.ACCEPTED, S.REJECTED]
    assert "max_open_orders" in orders[2].reason
    assert oms.manager.risk_context.open_orders("s1") == 2
    await oms.manager.cancel(orders[0].client_id)
    assert oms.manager.risk_context.open_orders("s1") == 1
    assert oms.manager.risk_context.open_orders(None) == 1


async def test_kill_switch_cancels_every_open_order_and_refuses_new_ones(oms: Rig, database: Database) -> None:
    await oms.feed(0, 100)
    resting = await oms.manager.submit_many([intent("buy", "1", limit="90"), intent("sell", "1", limit="110")])
    assert [o.status for o in resting] == [S.ACCEPTED, S.ACCEPTED]

    await oms.risk.kill("test")

    for order in resting:
        assert oms.manager.orders[order.client_id].status is S.CANCELLED
        assert await status_of(database.pool, order.client_id) == "cancelled"
        seen = await oms.broker.query(order.client_id)
        assert seen is not None
        assert seen.status is S.CANCELLED
    assert await oms.broker.open_orders() == []
    after = await oms.manager.submit(intent("buy", "1"))
    assert after.status is S.REJECTED
    assert after.reason.startswith("risk halted: ")


async def test_a_halted_strategy_loses_only_its_own_orders(oms: Rig) -> None:
    await oms.feed(0, 100)
    mine, other = await oms.manager.submit_many(
        [intent("buy", "1", limit="90", strategy="bad"), intent("buy", "1", limit="90", strategy="good")]
    )
    await oms.risk.set_limits("bad", RiskLimits(daily_loss_halt=Decimal(10)))
    await oms.risk.on_equity("bad", Decimal(1000))
    await oms.risk.on_equity("bad", Decimal(980))
    assert oms.manager.orders[mine.client_id].status is S.CANCELLED
    assert oms.manager.orders[other.client_id].status is S.ACCEPTED
    assert [o.client_id for o in oms.manager.open_orders()] == [other.client_id]


async def test_cancel_all_of_one_strategy_and_unknown_ids(oms: Rig) -> None:
    await oms.feed(0, 100)
    a, b = await oms.manager.submit_many(
        [intent("buy", "1", limit="90", strategy="a"), intent("buy", "1", limit="90", strategy="b")]
    )
    cancelled = await oms.manager.cancel_all("a")
    assert [o.client_id for o in cancelled] == [a.client_id]
    assert oms.manager.open_orders("b")[0].client_id == b.client_id
    again = await oms.manager.cancel(a.client_id)  # already ended: returned as it is
    assert again.status is S.CANCELLED
    with pytest.raises(UnknownOrder):
        await oms.manager.cancel("nope")


async def test_an_intent_for_another_venue_or_symbol_refuses_the_batch_before_any_write(
    oms: Rig, database: Database
) -> None:
    with pytest.raises(RejectedError, match="not an instrument"):
        await oms.manager.submit_many([intent("buy", "1"), intent("buy", "1", symbol="ZZZ")])
    assert await database.pool.fetchval("SELECT count(*) FROM orders") == 0
    assert oms.manager.orders == {}
    assert VENUE == "paper"


async def test_close_refuses_new_submits_and_can_cancel_what_is_open(make_oms: MakeRig, tmp_path: Path) -> None:
    rig = await make_oms()
    await rig.feed(0, 100)
    order = await rig.manager.submit(intent("buy", "1", limit="90"))
    await rig.manager.close(cancel_open=True)
    assert rig.manager.orders[order.client_id].status is S.CANCELLED
    with pytest.raises(RejectedError, match="closed"):
        await rig.manager.submit(intent("buy", "1"))
