"""Instruments, stored bars and ticks by time range with keyset paging, and backtests on stored bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from framework.data.store import import_frame
from framework.events import Tick, datetime_to_ns
from framework.instruments import Instrument
from framework.storage.marketdata import tick_rows, upsert_instruments, write_ticks
from tests.api.helpers import ApiServer

START = datetime(2024, 1, 1, tzinfo=UTC)
AAA = Instrument("AAA", tick_size=0.01, qty_step=1.0, venue="SIM")


async def _store_bars(api: ApiServer, days: int = 250) -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
    index = pd.date_range(START, periods=days, freq="1D", tz="UTC")
    frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}, index=index)
    frame["volume"] = 1000.0
    await import_frame(api.ctx.db(), frame, AAA, "1d")


async def _store_ticks(api: ApiServer, count: int = 25) -> None:
    pool = api.ctx.db()
    ids = await upsert_instruments(pool, [AAA])
    ticks = [
        Tick("SIM", "AAA", datetime_to_ns(START) + (i // 2) * 1_000_000_000, f"t{i:03d}", 100.0 + i, 1.0, 1)
        for i in range(count)
    ]
    async with pool.acquire() as conn:
        await write_ticks(conn, tick_rows(ticks, ids, START))


async def test_instruments_list_the_traded_and_the_stored(api: ApiServer, viewer_token: str) -> None:
    await _store_bars(api, 5)
    async with api.client(viewer_token) as http:
        instruments = (await http.get("/api/v1/instruments")).json()
    by_symbol = {i["symbol"]: i for i in instruments}
    assert by_symbol["GOOG"]["tradable"] is True
    assert (by_symbol["AAA"]["tradable"], by_symbol["AAA"]["stored"]) == (False, True)
    assert by_symbol["AAA"]["tick_size"] == "0.01"


async def test_bars_are_paged_by_cursor_without_gaps_or_repeats(api: ApiServer, viewer_token: str) -> None:
    await _store_bars(api)
    seen: list[str] = []
    cursor = None
    async with api.client(viewer_token) as http:
        while True:
            params = {"symbol": "AAA", "timeframe": "1d", "limit": 64, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/v1/bars", params=params)).json()
            seen += [b["time"] for b in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ranged = await http.get(
            "/api/v1/bars",
            params={
                "symbol": "AAA",
                "timeframe": "1d",
                "start": (START + timedelta(days=10)).isoformat(),
                "end": (START + timedelta(days=20)).isoformat(),
            },
        )
    assert len(seen) == len(set(seen)) == 250
    assert seen == sorted(seen)
    items = ranged.json()["items"]
    assert len(items) == 10
    assert items[0]["time"].startswith("2024-01-11")
    assert items[0]["close_time"].startswith("2024-01-12")


async def test_ticks_are_paged_by_time_and_trade_id(api: ApiServer, viewer_token: str) -> None:
    await _store_ticks(api)
    ids: list[str] = []
    cursor = None
    async with api.client(viewer_token) as http:
        while True:
            params = {"symbol": "AAA", "limit": 4, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/v1/ticks", params=params)).json()
            ids += [t["trade_id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert ids == [f"t{i:03d}" for i in range(25)]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/bars", {"symbol": "NOPE", "timeframe": "1d"}, 404, "unknown_symbol"),
        ("/api/v1/bars", {"symbol": "AAA", "timeframe": "7m"}, 404, "unknown_timeframe"),
        ("/api/v1/bars", {"symbol": "AAA", "timeframe": "1d", "start": "2024-01-01T00:00:00"}, 422, "invalid_start"),
        ("/api/v1/bars", {"symbol": "AAA", "timeframe": "1d", "limit": 0}, 422, "invalid_limit"),
        ("/api/v1/bars", {"symbol": "AAA", "timeframe": "1d", "cursor": "garbage!"}, 422, "invalid_cursor"),
        ("/api/v1/ticks", {"symbol": "AAA", "cursor": "WyJ4Il0"}, 422, "invalid_cursor"),
        ("/api/v1/ticks", {}, 422, "missing_symbol"),
    ],
)
async def test_bad_market_data_queries_are_4xx(api: ApiServer, viewer_token, path, params, status, code) -> None:
    await _store_bars(api, 5)
    async with api.client(viewer_token) as http:
        response = await http.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_a_backtest_runs_on_stored_bars(api: ApiServer, trader_token: str) -> None:
    await _store_bars(api)
    body = {"strategy": "sma_cross", "symbols": ["AAA"], "timeframe": "1d", "params": {"fast": 5, "slow": 20}}
    async with api.client(trader_token) as http:
        created = await http.post("/api/v1/backtests", json={**body, "fees": 0.001})
        assert created.status_code == 201, created.text
        run = created.json()
        stats = (await http.get(f"/api/v1/backtests/{run['id']}")).json()
        trades = (await http.get(f"/api/v1/backtests/{run['id']}/trades")).json()["items"]
        equity = (await http.get(f"/api/v1/backtests/{run['id']}/equity")).json()["items"]
        listed = (await http.get("/api/v1/backtests")).json()
    assert run["bars"] == 250
    assert stats["stats"]["trades"] == len([t for t in trades if t["status"] == "closed"])
    assert len(equity) == 250
    assert equity[-1]["equity"] == pytest.approx(run["final_equity"])
    assert [b["id"] for b in listed] == [run["id"]]


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"params": {"fast": 1}}, 422, "invalid_parameter"),
        ({"strategy": "nope"}, 422, "unknown_strategy"),
        ({"symbols": ["NOPE"]}, 422, "unknown_symbol"),
        ({"start": "2030-01-01T00:00:00Z"}, 422, "no_data"),
        ({"timeframe": "9s"}, 422, "unknown_timeframe"),
        ({"fees": 2}, 422, "invalid_fees"),
    ],
)
async def test_bad_backtests_are_4xx(api: ApiServer, trader_token, changes, status, code) -> None:
    await _store_bars(api, 30)
    body = {"strategy": "sma_cross", "symbols": ["AAA"], "timeframe": "1d", **changes}
    async with api.client(trader_token) as http:
        response = await http.post("/api/v1/backtests", json=body)
        unknown = await http.get("/api/v1/backtests/nope/trades")
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_backtest")
