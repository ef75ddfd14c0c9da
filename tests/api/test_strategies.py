"""Strategy classes and instances through the API: create, start, pause, stop, change parameters."""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiServer, wait_for

INSTANCES = "/api/v1/instances"


def _sma(instance_id: str = "sma-goog", **changes: object) -> dict:
    body = {"id": instance_id, "strategy": "sma_cross", "symbols": ["GOOG"], "timeframe": "1d", "capital": "100000"}
    body.update(changes)
    return body


async def test_strategy_classes_list_their_parameter_declarations(api: ApiServer, viewer_token: str) -> None:
    async with api.client(viewer_token) as http:
        classes = (await http.get("/api/v1/strategies")).json()
    sma = next(c for c in classes if c["name"] == "sma_cross")
    fast = next(p for p in sma["params"] if p["name"] == "fast")
    assert fast["type"] == "int"
    assert fast["bounds"] == [2, 200]
    assert sma["summary"]


async def test_an_instance_is_created_started_paused_stopped_and_retuned(api: ApiServer, trader_token: str) -> None:
    async with api.client(trader_token) as http:
        created = await http.post(INSTANCES, json=_sma(params={"fast": 5, "slow": 20}))
        assert created.status_code == 201, created.text
        assert created.json()["state"] == "stopped"
        assert created.json()["params"]["fast"] == 5
        started = await http.post(f"{INSTANCES}/sma-goog/start")
        assert started.json()["state"] == "running"

    async def decided() -> bool:
        async with api.client(trader_token) as http:
            return (await http.get(f"{INSTANCES}/sma-goog")).json()["decisions"] > 0

    await wait_for(decided)
    async with api.client(trader_token) as http:
        paused = await http.post(f"{INSTANCES}/sma-goog/pause")
        tuned = await http.patch(f"{INSTANCES}/sma-goog/params", json={"params": {"fast": 8}})
        stopped = await http.post(f"{INSTANCES}/sma-goog/stop")
        listed = (await http.get(INSTANCES)).json()
    assert paused.json()["state"] == "paused"
    assert tuned.status_code == 200, tuned.text
    assert (tuned.json()["params"]["fast"], tuned.json()["params"]["slow"]) == (8, 20)
    assert stopped.json()["state"] == "stopped"
    assert [(i["id"], i["state"], i["last_error"]) for i in listed] == [("sma-goog", "stopped", None)]
    rows = await api.ctx.db().fetch("SELECT state, params FROM strategy_instances WHERE id = 'sma-goog'")
    assert rows[0]["state"] == "stopped"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (_sma(params={"fast": 1}), 422, "invalid_parameter"),
        (_sma(params={"fast": 500}), 422, "invalid_parameter"),
        (_sma(params={"fast": 30, "slow": 10}), 422, "invalid_parameter"),
        (_sma(params={"speed": 3}), 422, "unknown_parameter"),
        (_sma(strategy="no_such_strategy"), 422, "unknown_strategy"),
        (_sma(symbols=["NOPE"]), 422, "unknown_symbol"),
        (_sma(timeframe="7m"), 422, "unknown_timeframe"),
        (_sma(capital="NaN"), 422, "non_finite_capital"),
        (_sma(capital="-100"), 422, "invalid_capital"),
        (_sma("has spaces"), 422, "invalid_parameter"),
        (_sma(symbols=[]), 422, "invalid_symbols"),
    ],
)
async def test_bad_instances_are_refused_with_a_code(api: ApiServer, trader_token, body, status, code) -> None:
    async with api.client(trader_token) as http:
        response = await http.post(INSTANCES, json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_parameter_changes_are_validated_and_unknown_instances_are_404(api: ApiServer, trader_token) -> None:
    async with api.client(trader_token) as http:
        assert (await http.post(INSTANCES, json=_sma())).status_code == 201
        duplicate = await http.post(INSTANCES, json=_sma())
        out_of_bounds = await http.patch(f"{INSTANCES}/sma-goog/params", json={"params": {"slow": 1000}})
        unknown_param = await http.patch(f"{INSTANCES}/sma-goog/params", json={"params": {"speed": 2}})
        unknown = await http.post(f"{INSTANCES}/nobody/start")
        unknown_get = await http.get(f"{INSTANCES}/nobody")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "instance_exists")
    assert (out_of_bounds.status_code, out_of_bounds.json()["code"]) == (422, "invalid_parameter")
    assert (unknown_param.status_code, unknown_param.json()["code"]) == (422, "unknown_parameter")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_strategy_instance")
    assert unknown_get.status_code == 404


async def test_a_viewer_reads_instances_but_cannot_drive_them(api: ApiServer, trader_token, viewer_token) -> None:
    async with api.client(trader_token) as http:
        assert (await http.post(INSTANCES, json=_sma())).status_code == 201
    async with api.client(viewer_token) as http:
        assert (await http.get(INSTANCES)).status_code == 200
        assert (await http.post(f"{INSTANCES}/sma-goog/start")).status_code == 403
        assert (await http.patch(f"{INSTANCES}/sma-goog/params", json={"params": {"fast": 3}})).status_code == 403


async def test_the_equity_curve_of_an_instance_and_of_the_account_is_paged(api: ApiServer, trader_token: str) -> None:
    async with api.client(trader_token) as http:
        assert (await http.post(INSTANCES, json=_sma(state="running"))).status_code == 201

    async def curve() -> list | None:
        async with api.client(trader_token) as http:
            items = (await http.get("/api/v1/account/equity", params={"strategy": "sma-goog"})).json()["items"]
        return items if len(items) >= 5 else None

    items = await wait_for(curve)
    async with api.client(trader_token) as http:
        first = (await http.get("/api/v1/account/equity", params={"limit": 2})).json()
        second = (await http.get("/api/v1/account/equity", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert items[0]["strategy"] == "sma-goog"
    assert items[0]["equity"] == "100000"
    assert [p["strategy"] for p in first["items"]] == ["*", "*"]
    assert first["items"][-1]["time"] < second["items"][0]["time"]
