"""Live dashboard benchmark: click to visible change, and bar or trade at the runner to the chart.

Setup, all on this machine: an embedded PostgreSQL in a temporary folder (or the server of
`DATABASE_URL`), a fresh database, `rata serve --mode dev` with the demo's run configuration
(`runner.cli_demo.demo_config`: a synthetic feed over 500 instruments at 1,000 trades/s, the
paper venue, four shipped strategies on 1s and 1m bars), `rata dashboard live` on it, and the page
opened in Debian's headless chromium (playwright), logged in as an admin. Runner, dashboard
server, browser and this process share the machine's cores.

Clicks are made inside the page (`element.click()`); every animation frame after it checks what
is on screen, so a time is that of the first frame showing the change (frames are ~16.7 ms
apart). `first` is the first visible change of a click, whichever condition it was. `feedback`
is what every button shows at once in the browser itself (a browser-side click handler: no round
trip to the dashboard server), and what the server then shows too before calling the API;
`confirmed` is the state the API returned. Measured, per kind of click:

- **Start / Stop** a strategy instance (`rsi-1s`, alternately): `feedback` = its state badge reads
  "starting..." / "stopping..."; `confirmed` = the badge shows the state the API returned
  (`running` / `stopped`).
- **Apply parameters** (`sma-1s`, `fast` alternately 5 and 6, typed first): `feedback` = the badge
  reads "applying..."; `confirmed` = the parameters line shows the value the API returned.
- **Kill switch** and **Release** (alternately): `feedback` = the trading state badge reads
  "HALTING..." / "RELEASING..."; `confirmed` = it reads HALTED / ACTIVE as the API returned it.
- **Cancel** an open order (a resting limit order submitted over REST): `feedback` = its status
  cell reads "cancelling..."; `confirmed` = its row is gone from the open orders table.

Bar and tick to chart: a WebSocket client in this process subscribes to the same `bars` and
`ticks` channels as the page (the 1s bars and the trades of the charted instrument). For each bar,
the time it reached this client (the runner's publish, to within a loopback hop) and the time the
page's chart first drew it (an animation-frame watch on the candles' data source, `Date.now()`,
the same clock) give "runner publish -> on the chart"; the bar's close time (the end of its
second, the latest possible time of its last trade) gives "bar close -> on the chart", which adds
the runner's bar close delay (a bar closes when the next period's first trade arrives, or 0.25 s
after its end). For each trade, the frame that first shows it in the forming candle (the page
watches the `trade_id` of the newest trade folded into `rata-live-forming`; a trade is on the
chart once it or a later trade of the same period is) gives "runner publish -> on the chart", and
its own time (the synthetic feed stamps it when it makes it) "trade time -> on the chart", which
adds the runner's ingestion (the runner publishes trades once they are committed to PostgreSQL).

No test asserts a time; this module records them (`python -m tests.bench live_dashboard`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, RenderableType

from runner.cli_demo import demo_config
from tests.bench._measure import count_p50_p95_max
from tests.bench._report import machine_rows, markdown_table, rich_table, update_section
from tests.dashboards.browser import DEEP_JS, FLAGS, block_outside, chromium_version, launch, type_into
from tests.dashboards.live_support import Api, fresh_database, live_dashboard, log_in, runner_process

SECTION = "## Live dashboard: click to visible change, bar to chart (issue 6)"
PACKAGES = ("panel", "bokeh", "holoviews", "playwright", "websockets", "httpx", "uvicorn", "fastapi")
TARGET_MS = 100.0
INSTRUMENTS, RATE = 500, 1000.0
VIEWPORT = {"width": 1600, "height": 2600}

_SEEN_JS = """() => {
  window.__rataSeen = {};
  window.__rataTradesSeen = {};
  const column = (s, name) => (s.data.get ? s.data.get(name) : s.data[name]);
  const tick = () => {
    const doc = window.Bokeh && window.Bokeh.documents[0];
    const s = doc && doc.get_model_by_name('rata-live-candles');
    const f = doc && doc.get_model_by_name('rata-live-forming');
    const now = Date.now();
    if (s) {
      const t = column(s, 'open_time');
      for (let i = t.length - 1; i >= 0 && i >= t.length - 10; i--) {
        if (!(t[i] in window.__rataSeen)) window.__rataSeen[t[i]] = now;
      }
    }
    if (f) {
      for (const id of column(f, 'trade_id')) {
        if (!(id in window.__rataTradesSeen)) window.__rataTradesSeen[id] = now;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def _badge(instance: str, state: str) -> str:
    return (
        f"return deep('.rata-instance-{instance} >>> .rata-instance-state').some((e) => e.dataset.state === {state!r});"
    )


def _trading(state: str) -> str:
    return f"return deep('.rata-trading-state').some((e) => e.dataset.state === {state!r});"


_CLICK_UNTIL_JS = (
    "async ({button, conditions, done, before, timeout}) => {"
    + DEEP_JS
    + """
  new Function('deep', 'shown', 'bokehColumn', before)(deep, shown, bokehColumn);
  const checks = Object.entries(conditions).map(([k, body]) => [k, new Function('deep', 'shown', 'bokehColumn', body)]);
  const target = deep(button)[0];
  if (!target) throw new Error('no element matches ' + button);
  const seen = {};
  return await new Promise((resolve) => {
    const t0 = performance.now();
    const tick = () => {
      const now = performance.now() - t0;
      for (const [k, f] of checks) if (!(k in seen) && f(deep, shown, bokehColumn)) seen[k] = now;
      if (done in seen || now > timeout) resolve(seen);
      else requestAnimationFrame(tick);
    };
    target.click();
    requestAnimationFrame(tick);
  });
}"""
)


def _click_until(
    page: Any, button: str, conditions: dict[str, str], *, done: str = "confirmed", before: str = ""
) -> dict[str, float]:
    """Click `button` and time each condition (ms, first frame showing it) until `done` holds.

    Like `tests.dashboards.browser.click_and_time`, but stops at the final state: an intermediate
    state the page skipped (the API answered within a frame) is missing instead of waited for.
    """
    arg = {"button": button, "conditions": conditions, "done": done, "before": before, "timeout": 60_000}
    seen = {str(k): float(v) for k, v in page.evaluate(_CLICK_UNTIL_JS, arg).items()}
    time.sleep(0.4)
    return seen


def _clicks(page: Any, button: str, conditions: dict[str, str], before: str = "") -> dict[str, float]:
    return _click_until(page, button, conditions, before=before)


def _collect(times: dict[str, list[float]], seen: dict[str, float]) -> None:
    """Add a click's times: `first` (its first visible change, whichever it was) and each condition's."""
    if seen:
        times.setdefault("first", []).append(min(seen.values()))
    for key, value in seen.items():
        times.setdefault(key, []).append(value)


def _start_stop(page: Any, n: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"Start strategy": {}, "Stop strategy": {}}
    for i in range(2 * n):
        action, pending, final = (
            ("stop", "stopping...", "stopped") if i % 2 == 0 else ("start", "starting...", "running")
        )
        seen = _clicks(
            page,
            f".rata-instance-rsi-1s >>> .rata-{action} >>> button",
            {"feedback": _badge("rsi-1s", pending), "confirmed": _badge("rsi-1s", final)},
        )
        _collect(out["Stop strategy" if action == "stop" else "Start strategy"], seen)
    return out


def _params(page: Any, n: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, list[float]] = {}
    for i in range(n):
        fast = 6 if i % 2 == 0 else 5
        type_into(page, "rata-instance-sma-1s .rata-param-fast", fast)
        time.sleep(0.3)
        shown = (
            "return deep('.rata-instance-sma-1s >>> .rata-params')"
            f".some((e) => e.dataset.params.includes('\"fast\": {fast}'));"
        )
        seen = _clicks(
            page,
            ".rata-instance-sma-1s >>> .rata-apply >>> button",
            {"feedback": _badge("sma-1s", "applying..."), "confirmed": shown},
        )
        _collect(out, seen)
    return {"Apply parameters": out}


def _kill_release(page: Any, n: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"Kill switch": {}, "Release": {}}
    for _ in range(n):
        for name, button, pending, state in (
            ("Kill switch", "kill", "halting...", "halted"),
            ("Release", "release", "releasing...", "active"),
        ):
            seen = _clicks(
                page, f".rata-{button} >>> button", {"feedback": _trading(pending), "confirmed": _trading(state)}
            )
            _collect(out[name], seen)
    return out


def _cancels(page: Any, api: Api, n: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, list[float]] = {}
    page.locator(".rata-tabs .bk-tab", has_text="Open orders").click()
    symbol = api.get("/instances/sma-1s")["symbols"][3]
    for _ in range(n):
        since = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
        bar = api.get("/bars", symbol=symbol, timeframe="1s", start=since)["items"][-1]
        limit = round(float(bar["close"]) / 2, 2)
        order = {"symbol": symbol, "side": "buy", "quantity": "1", "type": "limit", "limit_price": str(limit)}
        sent = api.post("/orders", order)
        if sent.status_code != 201:
            continue
        client_id = sent.json()["client_id"]
        page.locator(".rata-orders .tabulator-row", has_text=client_id).wait_for()
        time.sleep(0.3)
        row = f"deep('.rata-orders >>> .tabulator-row').filter((r) => r.textContent.includes({client_id!r}))"
        cancelling = f"return {row}.some((r) => r.textContent.includes('cancelling...'));"
        seen = _click_until(
            page,
            f".rata-orders >>> .tabulator-row[data-rata-cancel='{client_id}'] .rata-cancel",
            {"feedback": cancelling, "confirmed": f"return {row}.length === 0;"},
            before=f"{row}.forEach((r) => r.setAttribute('data-rata-cancel', {client_id!r}));",
        )
        _collect(out, seen)
    return {"Cancel order": out}


class _StreamClock:
    """A WebSocket client in a thread: when each 1s bar and each trade of `symbol` reached it (time.time, ms).

    `trades` holds (trade id, its 1s period's open in ms, its own time in ms, received) in arrival order.
    """

    def __init__(self, api_url: str, token: str, symbol: str) -> None:
        self.received: dict[float, float] = {}
        self.trades: list[tuple[str, float, float, float]] = []
        self.symbol = symbol
        self._url = api_url.replace("http://", "ws://") + "/api/v1/ws"
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

        from dashboards.live_chart import epoch_ms

        protocols = [Subprotocol("bearer"), Subprotocol(self._token)]
        with connect(self._url, subprotocols=protocols, proxy=None, compression=None) as ws:
            ws.send(json.dumps({"op": "subscribe", "channel": "bars", "symbol": self.symbol, "timeframe": "1s"}))
            ws.send(json.dumps({"op": "subscribe", "channel": "ticks", "symbol": self.symbol}))
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    message = json.loads(ws.recv(timeout=0.5))
                    now = time.time() * 1000
                    if message.get("type") != "event":
                        continue
                    data = message["data"]
                    if str(message["channel"]).startswith("ticks:"):
                        when = epoch_ms(data["time"])
                        self.trades.append((str(data["trade_id"]), when // 1000 * 1000, when, now))
                    else:
                        self.received.setdefault(epoch_ms(data["time"]), now)

    def __enter__(self) -> _StreamClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _stream_delays(page: Any, clock: _StreamClock, seconds: float) -> dict[str, dict[str, list[float]]]:
    page.evaluate(_SEEN_JS)
    time.sleep(seconds)
    seen = {float(k): float(v) for k, v in page.evaluate("() => window.__rataSeen").items()}
    publish, close = [], []
    for opened, received in clock.received.items():
        drawn = seen.get(opened)
        if drawn is None:
            continue
        publish.append(drawn - received)
        close.append(drawn - (opened + 1000.0))
    trades_seen = {str(k): float(v) for k, v in page.evaluate("() => window.__rataTradesSeen").items()}
    trade_publish, trade_time = [], []
    shown_by_period: dict[float, float] = {}  # the earliest frame showing a later trade of the same period
    for trade_id, period, when, received in reversed(clock.trades):
        drawn = min(trades_seen.get(trade_id, float("inf")), shown_by_period.get(period, float("inf")))
        shown_by_period[period] = drawn
        if drawn != float("inf"):
            trade_publish.append(drawn - received)
            trade_time.append(drawn - when)
    return {
        "bar (1s) of the charted instrument": {
            "runner publish -> on the chart": publish,
            "bar close -> on the chart": close,
        },
        "trade of the charted instrument": {
            "runner publish -> on the chart": trade_publish,
            "trade time -> on the chart": trade_time,
        },
    }


@contextlib.contextmanager
def _admin_dsn(folder: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from framework.storage import EmbeddedPostgres

    server = EmbeddedPostgres(folder / "pgdata")
    try:
        yield server.start()
    finally:
        server.stop()


def measure(
    quick: bool,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]], dict[str, Any]]:
    """Start everything, log in, click and watch; return click times, bar and trade delays and facts about the run."""
    from playwright.sync_api import sync_playwright

    n = 4 if quick else 20
    facts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rata-bench-live-") as tmp:
        folder = Path(tmp)
        with (
            _admin_dsn(folder) as admin_dsn,
            fresh_database(admin_dsn) as dsn,
            runner_process(dsn, folder / "runner", toml=demo_config(INSTRUMENTS, RATE)) as runner,
            live_dashboard(runner.url, folder / "dashboard.log") as url,
            sync_playwright() as playwright,
        ):
            api = Api(runner.url, "alice")
            browser = launch(playwright)
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(120_000)
                refused = block_outside(page)
                log_in(page, url, "alice")
                time.sleep(3.0)
                symbol = page.locator(".rata-symbol select").input_value()
                token = api.http.headers["Authorization"].split(" ", 1)[1]
                with _StreamClock(runner.url, token, symbol) as clock:
                    delays = _stream_delays(page, clock, 20.0 if quick else 90.0)
                clicks: dict[str, dict[str, list[float]]] = {}
                clicks |= _start_stop(page, n)
                clicks |= _params(page, n)
                clicks |= _kill_release(page, max(2, n // 2))
                clicks |= _cancels(page, api, max(2, n // 2))
                metrics = api.http.get(runner.url + "/metrics").text
                facts = {"refused": list(refused), "symbol": symbol, "metrics": metrics}
            finally:
                browser.close()
                api.close()
    return clicks, delays, facts


def run(console: Console, *, quick: bool = False) -> list[RenderableType]:
    """Measure, print, and (unless `quick`) record the section in RESULTS.md."""
    setup = [
        *machine_rows(PACKAGES),
        (
            "browser",
            f"{chromium_version()}, headless, {' '.join(FLAGS)}; viewport {VIEWPORT['width']} x {VIEWPORT['height']}",
        ),
        (
            "runner",
            f"`rata serve --mode dev` subprocess: synthetic feed over {INSTRUMENTS} instruments at "
            f"{RATE:,.0f} trades/s, paper venue, strategies sma-1s, rsi-1s (1s bars), bollinger-1m, "
            "momentum-1m (1m bars); fresh database on an embedded PostgreSQL",
        ),
        ("dashboard", "`rata dashboard live` subprocess on 127.0.0.1; page logged in as an admin"),
    ]
    with console.status("timing the live dashboard in chromium..."):
        clicks, delays, facts = measure(quick)
    header = ("click", "visible change", "n", "p50 ms", "p95 ms", "max ms", f"p95 < {TARGET_MS:.0f} ms")
    rows = []
    for click, kinds in clicks.items():
        for kind, values in kinds.items():
            n, p50, p95, worst = count_p50_p95_max(values)
            verdict = "(info)"
            if values and kind == "first":
                verdict = "PASS" if np.percentile(values, 95) < TARGET_MS else "FAIL"
            rows.append((click, kind, n, p50, p95, worst, verdict))
    refused = facts.get("refused", [])
    rows.append(
        (
            "(page)",
            "requests refused outside 127.0.0.1",
            str(len(refused)),
            "",
            "",
            "",
            "PASS" if not refused else "FAIL",
        )
    )
    delay_header = ("what", "delay", "n", "p50 ms", "p95 ms", "max ms")
    delay_rows = [
        (what, name, *count_p50_p95_max(values)) for what, kinds in delays.items() for name, values in kinds.items()
    ]
    notes = (
        "`first` is a click's first visible change, whichever it was: `feedback` (shown by the browser itself "
        "when the button is clicked, then by the dashboard server before it calls the API), or directly "
        "`confirmed` when the API answered within the same frame (then `feedback` has fewer samples). The 100 ms "
        "target of the issue applies to `first`; `confirmed` adds the round trip to the dashboard server and the "
        "API call (an audited write to PostgreSQL) and shows its answer. "
        f"Bars and trades are those of {facts.get('symbol', '?')}."
    )
    if not quick:
        body = "\n\n".join(
            [
                "### Setup",
                markdown_table(("item", "value"), setup),
                "### Click to visible change",
                markdown_table(header, rows),
                "### Bar and trade at the runner to the chart",
                markdown_table(delay_header, delay_rows),
                notes,
                "Method: see the docstring of `tests/bench/bench_live_dashboard.py`.",
            ]
        )
        update_section(SECTION, body)
    return [
        rich_table("setup", ("item", "value"), setup),
        rich_table("click to visible change (ms)", header, rows),
        rich_table("bar and trade to chart (ms)", delay_header, delay_rows),
        notes,
    ]
