"""The live dashboard in a real browser against a real runner: what a trader sees and does.

One `rata serve --mode dev` (synthetic feed over 20 instruments, paper venue, `sma-fast` running
and `rsi-1s` stopped, both on 1s bars) on a fresh database, and one `rata dashboard live` on it,
serve the whole module; each test opens a fresh page (a fresh session) in Debian's chromium with
every request outside 127.0.0.1 refused, logs in, and checks the page against the API (the
candles, trades and indicators in the browser's Bokeh data sources against `/bars`, `/ticks` and
`/instances/{id}/indicators`; the buttons' effects against the runner's state). Access
tokens live 30 s here, so the page's refresh and the stream's reconnect run during the module.
Times are measured by `tests/bench/bench_live_dashboard.py`, never asserted here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dashboards.live_chart import epoch_ms
from tests.dashboards.browser import DEEP_JS, block_outside, page_text, source_column
from tests.dashboards.live_support import Api, fresh_database, live_dashboard, log_in, runner_process

pytestmark = pytest.mark.slow

TOKEN_TTL_S = 30


@pytest.fixture(scope="module")
def runner_url(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("live-runner")
    with (
        fresh_database(admin_dsn) as dsn,
        runner_process(dsn, folder, env={"RATA_ACCESS_TOKEN_TTL_S": str(TOKEN_TTL_S)}) as runner,
    ):
        yield runner.url


@pytest.fixture(scope="module")
def live_url(runner_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("live-dashboard") / "dashboard.log"
    with live_dashboard(runner_url, log) as url:
        yield url


@dataclass
class Opened:
    """A browser page, the requests it tried outside 127.0.0.1, and its console errors."""

    page: Any
    refused: list[str]
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def opened(browser: Any, live_url: str) -> Iterator[Opened]:
    """A fresh page (tall enough that every panel is on screen) with outside requests refused."""
    context = browser.new_context(viewport={"width": 1600, "height": 2600})
    page = context.new_page()
    page.set_default_timeout(90_000)
    result = Opened(page, block_outside(page))
    page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
    yield result
    assert result.refused == [], "the page must load everything from the dashboard server"
    context.close()


@pytest.fixture
def page(opened: Opened) -> Any:
    return opened.page


@pytest.fixture
def api(runner_url: str) -> Iterator[Api]:
    client = Api(runner_url, "alice")
    yield client
    client.close()


def _candle_times(page: Any) -> list[float]:
    return source_column(page, "rata-live-candles", "open_time") or []


def _instance(page: Any, instance_id: str) -> Any:
    return page.locator(f".rata-instance-{instance_id}")


def _params_with(name: str, value: object) -> str:
    return f".rata-params[data-params*='\"{name}\": {value}']"


def _wait_state(page: Any, instance_id: str, state: str) -> None:
    _instance(page, instance_id).locator(f'.rata-instance-state[data-state="{state}"]').wait_for()


def test_logged_in_trader_sees_bars_stream_onto_the_chart_without_a_reload(page, live_url, api, shoot):
    log_in(page, live_url, "bob")
    page.evaluate("() => { window.__rataSamePage = true; }")
    first = _candle_times(page)
    page.wait_for_function(
        "(n) => { const d = window.Bokeh.documents[0]; const s = d.get_model_by_name('rata-live-candles');"
        " const t = s.data.get ? s.data.get('open_time') : s.data.open_time; return t.length >= n + 3; }",
        arg=len(first),
    )
    later = _candle_times(page)
    assert later[-1] > first[-1], "the newest candle must be newer"
    assert later == sorted(later), "candles stay in time order"
    assert page.evaluate("() => window.__rataSamePage === true"), "the page must not have reloaded"
    assert "bob (trader)" in page_text(page)
    # The chart shows the instrument the running strategy trades, with its fills on it.
    instance = api.get("/instances/sma-fast")
    assert page.locator(".rata-symbol select").input_value() == instance["symbols"][0]
    page.wait_for_function(
        "() => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-fills');"
        " const t = s.data.get ? s.data.get('time') : s.data.time; return t.length > 0; }"
    )
    fills = api.get("/fills", symbol=instance["symbols"][0], limit=1000)["items"]
    shown = source_column(page, "rata-live-fills", "price") or []
    assert set(shown) <= {float(f["price"]) for f in fills}
    page.locator('.rata-feed[data-healthy="yes"]').wait_for()
    shoot(page, "streaming")


def test_a_wrong_password_is_refused_with_the_api_reason(page, live_url, shoot):
    page.goto(live_url)
    page.locator(".rata-login-username input").fill("bob")
    page.locator(".rata-login-password input").fill("not-the-password")
    page.locator(".rata-login button").click()
    page.locator(".rata-error", has_text="login refused").wait_for(state="visible")
    assert "invalid_credentials" in page_text(page)
    assert not page.locator(".rata-chart").first.is_visible(), "nothing but the login form before logging in"
    shoot(page, "refused")


def test_trader_starts_and_stops_a_strategy(page, live_url, api, shoot):
    log_in(page, live_url, "bob")
    card = _instance(page, "rsi-1s")
    card.locator(".rata-start button").click()
    _wait_state(page, "rsi-1s", "running")
    assert api.get("/instances/rsi-1s")["state"] == "running"
    shoot(page, "started")
    card.locator(".rata-stop button").click()
    _wait_state(page, "rsi-1s", "stopped")
    assert api.get("/instances/rsi-1s")["state"] == "stopped"
    shoot(page, "stopped")


def test_a_parameter_change_goes_through_the_api_and_is_validated_there(page, live_url, api, shoot):
    log_in(page, live_url, "bob")
    card = _instance(page, "sma-fast")
    field = card.locator(".rata-param-fast input")
    field.fill("4")
    field.press("Enter")
    card.locator(".rata-apply button").click()
    card.locator(_params_with("fast", 4)).wait_for()
    assert api.get("/instances/sma-fast")["params"]["fast"] == 4
    shoot(page, "parameter-applied")

    field.fill("9")  # slow is 8: the class refuses fast >= slow
    field.press("Enter")
    card.locator(".rata-apply button").click()
    page.locator(".rata-error", has_text="parameters of sma-fast").wait_for(state="visible")
    assert "invalid_parameter" in page_text(page)
    assert api.get("/instances/sma-fast")["params"]["fast"] == 4
    shoot(page, "parameter-refused")

    field.fill("3")
    field.press("Enter")
    card.locator(".rata-apply button").click()
    card.locator(_params_with("fast", 3)).wait_for()
    # the refusal is cleared by the same answer, which may reach the page a frame after the new line
    page.locator(".rata-error").wait_for(state="hidden")


def _resting_order(api: Api) -> str:
    """Submit a buy limit at half the market (it rests) and return its client id."""
    symbol = api.get("/instances/sma-fast")["symbols"][1]
    since = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    bars = api.get("/bars", symbol=symbol, timeframe="1s", start=since)["items"]
    price = Decimal(str(bars[-1]["close"])) / 2
    order = {"symbol": symbol, "side": "buy", "quantity": "1", "type": "limit", "limit_price": str(price)}
    sent = api.post("/orders", order)
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] in ("submitted", "accepted"), sent.text
    return str(sent.json()["client_id"])


def test_a_trader_cancels_an_open_order_from_its_row(page, live_url, api, shoot):
    client_id = _resting_order(api)
    log_in(page, live_url, "bob")
    page.locator(".rata-tabs .bk-tab", has_text="Open orders").click()
    row = page.locator(".rata-orders .tabulator-row", has_text=client_id)
    row.wait_for()
    shoot(page, "open-order")
    row.locator(".rata-cancel").click()
    row.wait_for(state="detached")
    assert api.get(f"/orders/{client_id}")["status"] == "cancelled"


def test_a_viewer_is_told_why_the_kill_switch_refuses(page, live_url, api, shoot):
    log_in(page, live_url, "carol")
    page.locator(".rata-kill button").click()
    page.locator(".rata-error", has_text="kill switch").wait_for(state="visible")
    assert "role viewer may not do this; it needs trader" in page_text(page)
    assert api.get("/risk")["state"] == "active"
    shoot(page, "viewer-refused")


def test_the_page_keeps_streaming_across_access_token_refreshes(page, live_url, api):
    log_in(page, live_url, "bob")
    time.sleep(TOKEN_TTL_S + 8)  # past the first token's expiry: the stream reconnected with a fresh one
    page.locator('.rata-stream[data-status="live"]').wait_for()
    before = _candle_times(page)[-1]
    page.wait_for_function(
        "(t) => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-candles');"
        " const v = s.data.get ? s.data.get('open_time') : s.data.open_time; return v[v.length - 1] > t; }",
        arg=before,
    )
    card = _instance(page, "rsi-1s")
    card.locator(".rata-pause button").click()
    _wait_state(page, "rsi-1s", "paused")
    assert api.get("/instances/rsi-1s")["state"] == "paused"
    card.locator(".rata-stop button").click()
    _wait_state(page, "rsi-1s", "stopped")
    assert not page.locator(".rata-error").is_visible()


def test_switching_instrument_and_timeframe_restreams_the_chart(page, live_url, api):
    log_in(page, live_url, "bob")
    page.locator(".rata-symbol select").select_option("SYN010")
    page.locator('.rata-chart-info[data-symbol="SYN010"][data-timeframe="1s"]').wait_for()
    page.wait_for_function(
        "() => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-candles');"
        " const v = s.data.get ? s.data.get('open_time') : s.data.open_time; return v.length > 2; }"
    )
    stored = api.get("/bars", symbol="SYN010", timeframe="1s", limit=10_000)["items"]
    opens = {b["time"] for b in stored}
    shown = _candle_times(page)
    assert {epoch_ms(t) for t in opens} & set(shown), "the chart shows SYN010's stored bars"
    page.locator(".rata-timeframe select").select_option("1m")
    page.locator('.rata-chart-info[data-symbol="SYN010"][data-timeframe="1m"]').wait_for()
    page.wait_for_function(
        "() => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-candles');"
        " const v = s.data.get ? s.data.get('open_time') : s.data.open_time;"
        " return v.length > 0 && v.every((t) => t % 60000 === 0); }"
    )


def test_kill_switch_halts_trading_on_screen_and_in_the_api_then_an_admin_releases_it(page, live_url, api, shoot):
    resting = _resting_order(api)
    log_in(page, live_url, "bob")
    page.locator('.rata-trading-state[data-state="active"]').wait_for()
    page.locator(".rata-kill button").click()
    page.locator('.rata-trading-state[data-state="halted"]').wait_for()
    assert "HALTED" in page_text(page)
    state = api.get("/risk")
    assert state["state"] == "halted"
    assert "(by bob)" in state["reason"]
    assert api.get(f"/orders/{resting}")["status"] == "cancelled", "the kill switch cancels open orders"
    shoot(page, "halted")

    page.locator(".rata-release button").click()  # a trader may not release
    page.locator(".rata-error", has_text="release").wait_for(state="visible")
    assert api.get("/risk")["state"] == "halted"

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_url, "alice")
    page.locator('.rata-trading-state[data-state="halted"]').wait_for()
    page.locator(".rata-release button").click()
    page.locator('.rata-trading-state[data-state="active"]').wait_for()
    assert api.get("/risk")["state"] == "active"
    shoot(page, "released")


_MODEL_JS = "([name, attr]) => { const m = window.Bokeh.documents[0].get_model_by_name(name); return m && m[attr]; }"
_COLUMN_JS = (
    "([name, column]) => { const s = window.Bokeh.documents[0].get_model_by_name(name);"
    " return s ? Array.from(s.data.get ? s.data.get(column) : s.data[column]) : null; }"
)
_DRAWN_JS = (
    "([name, names]) => { const s = window.Bokeh.documents[0].get_model_by_name(name);"
    " if (!s || s.tags.join() !== names.join()) return false;"
    " const y = s.data.get ? s.data.get('y0') : s.data.y0; return y.length > 0 && Number.isFinite(y[y.length - 1]); }"
)
_NEWER_JS = (
    "([name, column, last]) => { const s = window.Bokeh.documents[0].get_model_by_name(name);"
    " const v = s.data.get ? s.data.get(column) : s.data[column]; return v.length > 0 && v[v.length - 1] > last; }"
)


def _column(page: Any, name: str, column: str) -> list[Any]:
    return list(page.evaluate(_COLUMN_JS, [name, column]) or [])


def _legend(page: Any, name: str) -> list[str]:
    return list(
        page.evaluate(
            "(name) => window.Bokeh.documents[0].get_model_by_name(name).items.filter((i) => i.visible)"
            ".map((i) => (typeof i.label === 'string' ? i.label : i.label.value))",
            name,
        )
    )


def test_the_running_strategy_s_indicators_are_drawn_on_the_chart_and_move_with_new_bars(page, live_url, api, shoot):
    log_in(page, live_url, "bob")
    page.evaluate("() => { window.__rataSamePage = true; }")
    symbol = api.get("/instances/sma-fast")["symbols"][0]
    chosen = page.locator(".rata-indicators select").input_value()
    assert chosen == "sma-fast (sma_cross, 1s)", "the running instance by default"
    page.wait_for_function(_DRAWN_JS, arg=["rata-live-overlays", ["fast_sma", "slow_sma"]])
    assert _legend(page, "rata-live-overlays-legend") == ["fast sma", "slow sma"]
    assert not page.locator(".rata-pane").first.is_visible(), "no pane: both averages overlay the price"
    before = _column(page, "rata-live-overlays", "open_time")[-1]
    page.wait_for_function(_NEWER_JS, arg=["rata-live-overlays", "open_time", before + 2000])
    assert page.evaluate("() => window.__rataSamePage === true"), "streamed, not reloaded"
    lines = _column(page, "rata-live-overlays", "open_time")
    assert lines == sorted(lines)
    assert all(t % 1000 == 0 for t in lines), "one value per 1s bar of the instance"
    assert len(set(lines) & set(_candle_times(page))) >= 3, "at the candles (a second without a trade has none)"
    # The values are the strategy's own, as the API computes them from the runner's bars.
    body = api.get("/instances/sma-fast/indicators", symbol=symbol, limit=60)
    compared = 0
    for k, name in enumerate(("fast_sma", "slow_sma")):
        series = next(s for s in body["indicators"] if s["name"] == name)
        by_time = {epoch_ms(t): v for t, v in zip(body["times"], series["values"], strict=True)}
        for opened, drawn in zip(lines, _column(page, "rata-live-overlays", f"y{k}"), strict=True):
            expected = by_time.get(opened)
            if expected is not None and drawn is not None and drawn == drawn:  # both warmed up (NaN != NaN)
                assert drawn == pytest.approx(expected, rel=1e-9)
                compared += 1
    assert compared >= 4
    shoot(page, "indicators")

    # Another instance trading the instrument: its RSI and levels go to a pane of their own.
    page.locator(".rata-indicators select").select_option("rsi-1s (rsi_reversion, 1s)")
    page.wait_for_function(_DRAWN_JS, arg=["rata-live-oscillators", ["rsi", "oversold", "overbought"]])
    page.locator(".rata-pane").first.wait_for(state="visible")
    assert _legend(page, "rata-live-oscillators-legend") == ["rsi", "oversold", "overbought"]
    assert set(_column(page, "rata-live-oscillators", "y1")) == {30.0}, "the oversold level of rsi-1s"
    assert page.evaluate(_MODEL_JS, ["rata-live-overlays", "tags"]) == [], "nothing over the price"
    before = _column(page, "rata-live-oscillators", "open_time")[-1]
    page.wait_for_function(_NEWER_JS, arg=["rata-live-oscillators", "open_time", before])
    shoot(page, "indicators-pane")


def test_trades_arrive_on_the_chart_between_bars(page, live_url, api, shoot):
    log_in(page, live_url, "bob")
    page.evaluate("() => { window.__rataSamePage = true; }")
    symbol = page.locator(".rata-symbol select").input_value()
    page.wait_for_function(
        "() => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-forming');"
        " const t = s.data.get ? s.data.get('trade_id') : s.data.trade_id; return t.length > 0; }"
    )
    first = _column(page, "rata-live-forming", "trade_id")
    page.wait_for_function(
        "(ids) => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-forming');"
        " const t = s.data.get ? s.data.get('trade_id') : s.data.trade_id;"
        " return t.length > 0 && !ids.includes(t[t.length - 1]); }",
        arg=first,
    )
    assert page.evaluate("() => window.__rataSamePage === true"), "streamed, not reloaded"
    trade_id = _column(page, "rata-live-forming", "trade_id")[-1]
    close = _column(page, "rata-live-forming", "close")[-1]
    opened = _column(page, "rata-live-forming", "open_time")[-1]
    assert opened > _candle_times(page)[-1], "a candle still forming, after the last closed one"
    # The trade is the runner's: stored with that id and price (the writer stores it within a moment).
    since = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
    stored: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while trade_id not in stored and time.monotonic() < deadline:
        time.sleep(0.5)
        stored = {t["trade_id"]: t for t in api.get("/ticks", symbol=symbol, start=since, limit=10_000)["items"]}
    assert stored[trade_id]["price"] == pytest.approx(close)
    assert opened <= epoch_ms(stored[trade_id]["time"]) < opened + 1000, "in the forming candle's second"
    page.wait_for_function(
        "() => { const s = window.Bokeh.documents[0].get_model_by_name('rata-live-last-price');"
        " return s.visible && s.location !== null; }"
    )
    shoot(page, "trades")


_CLICK_AND_LOOK_JS = (
    "async ([button, pending]) => {"
    + DEEP_JS
    + """
  deep(button)[0].click();
  // Still in the click's own task (BokehJS runs browser-side callbacks in microtasks): no message
  // from the server can have been handled yet.
  for (let i = 0; i < 100; i++) await Promise.resolve();
  const models = Array.from(window.Bokeh.documents[0]._all_models.values());
  const inModels = models.some((m) => typeof m.text === 'string' && m.text.includes(pending));
  const inPage = deep('.rata-orders >>> .tabulator-cell').some((c) => c.textContent === pending);
  return inModels || inPage;
}"""
)


def test_every_button_shows_its_click_in_the_browser_itself_then_the_api_s_answer(page, live_url, api, shoot):
    client_id = _resting_order(api)
    log_in(page, live_url, "bob")
    pause = ".rata-instance-rsi-1s >>> .rata-pause >>> button"
    assert page.evaluate(_CLICK_AND_LOOK_JS, [pause, "pausing..."]), "pausing... before any server answer"
    _wait_state(page, "rsi-1s", "paused")
    stop = ".rata-instance-rsi-1s >>> .rata-stop >>> button"
    assert page.evaluate(_CLICK_AND_LOOK_JS, [stop, "stopping..."])
    _wait_state(page, "rsi-1s", "stopped")
    # Apply with nothing changed sends nothing: the badge comes back from "applying...".
    apply = ".rata-instance-rsi-1s >>> .rata-apply >>> button"
    assert page.evaluate(_CLICK_AND_LOOK_JS, [apply, "applying..."])
    page.locator(".rata-notice", has_text="no parameter changed").wait_for()
    _wait_state(page, "rsi-1s", "stopped")
    page.locator(".rata-tabs .bk-tab", has_text="Open orders").click()
    row = page.locator(".rata-orders .tabulator-row", has_text=client_id)
    row.wait_for()
    page.evaluate(
        "(id) => {" + DEEP_JS + " deep('.rata-orders >>> .tabulator-row').filter((r) => r.textContent.includes(id))"
        ".forEach((r) => r.setAttribute('data-rata-cancel', id)); }",
        client_id,
    )
    cancel = f".rata-orders >>> .tabulator-row[data-rata-cancel='{client_id}'] .rata-cancel"
    assert page.evaluate(_CLICK_AND_LOOK_JS, [cancel, "cancelling..."])
    row.wait_for(state="detached")
    assert api.get(f"/orders/{client_id}")["status"] == "cancelled"
    assert api.get("/instances/rsi-1s")["state"] == "stopped"
    shoot(page, "acknowledged")
