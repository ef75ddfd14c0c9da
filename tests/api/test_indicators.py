"""A strategy instance's indicators through the API: from the engine's panel, from stored bars, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import load_dataset
from framework.data.store import import_frame
from framework.engine.instances import InstanceSpec
from framework.events import Bar
from strategies.sma_cross import SmaCross
from tests.api.helpers import ApiServer, wait_for

INSTANCES = "/api/v1/instances"


def _instance(instance_id: str, timeframe: str, state: str = "stopped") -> dict:
    return {
        "id": instance_id,
        "strategy": "sma_cross",
        "symbols": ["GOOG"],
        "params": {"fast": 3, "slow": 8},
        "timeframe": timeframe,
        "capital": "100000",
        "state": state,
    }


async def _create(api: ApiServer, token: str, body: dict) -> None:
    async with api.client(token) as http:
        created = await http.post(INSTANCES, json=body)
    assert created.status_code == 201, created.text


async def test_a_running_instance_draws_its_averages_from_the_engine_panel(api: ApiServer, trader_token, viewer_token):
    await _create(api, trader_token, _instance("sma-goog", "1d", state="running"))
    engine = api.ctx.runner.engine
    key = ("1d", ("GOOG",))
    await wait_for(lambda: key in engine.panels and len(engine.panels[key]) >= 20)
    async with api.client(viewer_token) as http:
        response = await http.get(f"{INSTANCES}/sma-goog/indicators", params={"symbol": "GOOG", "limit": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["instance"], body["strategy"], body["symbol"]) == ("sma-goog", "sma_cross", "GOOG")
    assert body["timeframe"] == "1d"
    assert body["source"] == "engine"
    assert [(s["name"], s["overlay"]) for s in body["indicators"]] == [("fast_sma", True), ("slow_sma", True)]
    times = pd.DatetimeIndex(body["times"])
    assert len(times) == 5
    assert times.is_monotonic_increasing
    # The replayed bars are GOOG's: the values are the averages of its closes up to each bar.
    goog = load_dataset("GOOG")
    expected = SmaCross(fast=3, slow=8).indicators(goog)
    closes_at = times + pd.Timedelta(days=1)
    for series in body["indicators"]:
        want = expected[series["name"]].frame["GOOG"].reindex(closes_at).to_numpy()
        assert series["values"] == pytest.approx(want.tolist(), rel=1e-12)


async def test_without_engine_bars_the_indicators_come_from_stored_bars(api: ApiServer, trader_token, viewer_token):
    goog = api.ctx.runner.engine.instruments["GOOG"]
    hours = pd.date_range("2024-03-01", periods=60, freq="1h", tz="UTC")
    close = 100.0 + np.arange(60.0)
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close}, index=hours)
    frame["volume"] = 10.0
    await import_frame(api.ctx.db(), frame, goog, "1h")
    await _create(api, trader_token, _instance("sma-hourly", "1h"))
    async with api.client(viewer_token) as http:
        last = (await http.get(f"{INSTANCES}/sma-hourly/indicators", params={"symbol": "GOOG", "limit": 20})).json()
        every = (await http.get(f"{INSTANCES}/sma-hourly/indicators", params={"symbol": "GOOG", "limit": 500})).json()
    assert last["source"] == "stored"
    assert pd.DatetimeIndex(last["times"]).equals(hours[-20:]), "open times, as /bars gives them"
    fast, slow = (s["values"] for s in last["indicators"])
    assert fast == pytest.approx((close[-20:] - 1).tolist()), "the mean of the last 3 closes of a straight line"
    assert slow == pytest.approx((close[-20:] - 3.5).tolist())
    assert len(every["times"]) == 60, "as many bars as are stored"
    slow_all = every["indicators"][1]["values"]
    assert slow_all[:7] == [None] * 7, "not warmed up yet: null"
    assert slow_all[7] == pytest.approx(close[:8].mean())


class Smudged(SmaCross):
    def indicators(self, data):
        raise RuntimeError("out of ink")


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("nobody/indicators", {"symbol": "GOOG"}, 404, "unknown_strategy_instance"),
        ("sma-goog/indicators", {"symbol": "MSFT"}, 422, "symbol_not_in_universe"),
        ("sma-goog/indicators", {}, 422, "missing_symbol"),
        ("sma-goog/indicators", {"symbol": "GOOG", "limit": 0}, 422, "invalid_limit"),
        ("sma-goog/indicators", {"symbol": "GOOG", "limit": 5001}, 422, "invalid_limit"),
        ("sma-5m/indicators", {"symbol": "GOOG"}, 404, "no_data"),
        ("smudged/indicators", {"symbol": "GOOG"}, 409, "strategy_error"),
    ],
)
async def test_bad_indicator_requests_are_refused_with_a_code(api: ApiServer, trader_token, path, params, status, code):
    await _create(api, trader_token, _instance("sma-goog", "1d", state="running"))
    await _create(api, trader_token, _instance("sma-5m", "5m"))
    engine = api.ctx.runner.engine
    spec = InstanceSpec.create("smudged", "sma_cross", ["GOOG"], venue=engine.get("sma-goog").venue, timeframe="1d")
    await engine.add(spec, strategy=Smudged())
    await wait_for(lambda: len(engine.panels[("1d", ("GOOG",))]) > 0)
    async with api.client(trader_token) as http:
        response = await http.get(f"{INSTANCES}/{path}", params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_indicators_need_a_token(api: ApiServer, trader_token) -> None:
    await _create(api, trader_token, _instance("sma-goog", "1d"))
    async with api.client() as http:
        response = await http.get(f"{INSTANCES}/sma-goog/indicators", params={"symbol": "GOOG"})
    assert response.status_code == 401


async def test_stored_bars_go_before_the_engine_panel_for_a_longer_history(api: ApiServer, trader_token, viewer_token):
    goog = api.ctx.runner.engine.instruments["GOOG"]
    hours = pd.date_range("2024-03-01", periods=60, freq="1h", tz="UTC")
    close = 100.0 + np.arange(60.0)
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close}, index=hours)
    frame["volume"] = 10.0
    await import_frame(api.ctx.db(), frame.iloc[:50], goog, "1h")  # the last 10 only in the engine's panel
    await _create(api, trader_token, _instance("sma-hourly", "1h"))
    engine = api.ctx.runner.engine
    panel = engine.panels[("1h", ("GOOG",))]
    closes_ns = (hours + pd.Timedelta(hours=1)).as_unit("ns").asi8
    for i in range(50, 60):
        bar = Bar("SIM", "GOOG", "1h", int(hours[i].as_unit("ns").value), close[i], close[i] + 1, close[i] - 1,
                  close[i], 10.0, close[i], 1)  # fmt: skip
        panel.append(int(closes_ns[i]), [bar])
    async with api.client(viewer_token) as http:
        engine_only = (
            await http.get(f"{INSTANCES}/sma-hourly/indicators", params={"symbol": "GOOG", "limit": 5})
        ).json()
        joined = (await http.get(f"{INSTANCES}/sma-hourly/indicators", params={"symbol": "GOOG", "limit": 30})).json()
    assert engine_only["source"] == "engine"
    assert joined["source"] == "stored+engine"
    assert pd.DatetimeIndex(joined["times"]).equals(hours[-30:]), "stored bars, then the panel's, without a seam"
    fast, slow = (s["values"] for s in joined["indicators"])
    assert fast == pytest.approx((close[-30:] - 1).tolist())
    assert slow == pytest.approx((close[-30:] - 3.5).tolist())
