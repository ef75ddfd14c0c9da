"""Research dashboard benchmark: the time from a click to the visible change, in a real browser.

The research dashboard is served by `rata dashboard research` in a subprocess on 127.0.0.1 and
opened in Debian's headless chromium (playwright), on the same machine. Each click is made inside
the page (`element.click()`), and every animation frame after it checks what is on screen, so a
time is that of the first frame showing the change (frames are ~16.7 ms apart; the paint of that
frame follows). Measured, per kind of click:

- **Run backtest** (`sma_cross` on GOOG, 2,148 daily bars; `fast` alternates 10/12 between clicks
  so every run draws different data): `feedback` = the clicked button reads "Running backtest..."
  and is disabled (drawn by the browser itself in the frame after the click, see
  `dashboards.widgets.pending_on_click`); `server` = the server's busy state has reached the page
  (the button's model says "Running backtest..."); `stats` = the stats table of the new run is in
  the page; `charts` = the equity curve's data in the browser ends at the new run's final equity
  (as computed by `framework.backtest`); `done` = results shown and the button idle again.
- **Invalid input** (fast >= slow, refused by the server before any work; the refused value
  alternates so the message text changes): `message` = the new one-line error shows.
- **Run sweep** (fast 5..50 step 5 x slow 20..200 step 20, 100 combinations, 73 valid):
  `feedback` as above; `heatmap` = a newly drawn heatmap canvas is on screen. (The spinner and
  its line show only for work longer than 0.3 s, which this sweep does not reach.)

The server and the browser share the machine's cores with each other (and with whatever else
runs), so the numbers include that contention. No test asserts a time; this module records them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, RenderableType

from framework import backtest, get_strategy, load_dataset
from tests.bench._measure import count_p50_p95_max
from tests.bench._report import machine_rows, markdown_table, rich_table, update_section
from tests.dashboards.browser import (
    FLAGS,
    block_outside,
    button_idle,
    button_running,
    chromium_version,
    click_and_time,
    dashboard_server,
    launch,
    type_into,
)

SECTION = "## Research dashboard: click to visible change (issue 6)"
PACKAGES = ("panel", "bokeh", "holoviews", "playwright", "vectorbt")
TARGET_MS = 100.0
# The server's busy state has reached the page: a button model (not just its element) says it runs.
SERVER_BUSY = (
    "const doc = window.Bokeh.documents[0];"
    " return [...(doc._all_models || new Map()).values()].some((m) => m.label === 'Running {task}...' && m.disabled);"
)


def _backtest_clicks(page: Any, n: int) -> dict[str, list[float]]:
    cls, bars = get_strategy("sma_cross"), load_dataset("GOOG")
    finals = {fast: backtest(cls(fast=fast, slow=20), bars, fees=0.001).final_equity for fast in (10, 12)}
    run = int(page.locator("table.rata-stats").get_attribute("data-run") or 0)
    times: dict[str, list[float]] = {"feedback": [], "server": [], "stats": [], "charts": [], "done": []}
    for i in range(n):
        fast = 12 if i % 2 == 0 else 10
        type_into(page, "rata-param-fast", fast)
        time.sleep(0.3)
        run += 1
        seen = click_and_time(
            page,
            ".rata-run-backtest >>> button",
            {
                "feedback": button_running("rata-run-backtest"),
                "server": SERVER_BUSY.format(task="backtest"),
                "stats": f"return deep('table.rata-stats[data-run=\"{run}\"]').length > 0;",
                "charts": "const e = bokehColumn('rata-equity', 'equity');"
                f" return !!e && e[e.length - 1] === {finals[fast]!r};",
                "done": f"if (deep('table.rata-stats[data-run=\"{run}\"]').length === 0) return false; "
                + button_idle("rata-run-backtest", "Run backtest"),
            },
        )
        for key, values in times.items():
            if key in seen:
                values.append(seen[key])
        time.sleep(0.5)
    return times


def _invalid_clicks(page: Any, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"message": []}
    type_into(page, "rata-param-slow", 20)
    for i in range(n):
        fast = 50 + i % 2
        type_into(page, "rata-param-fast", fast)
        time.sleep(0.3)
        text = f"fast ({fast}) must be smaller than slow (20)"
        seen = click_and_time(
            page,
            ".rata-run-backtest >>> button",
            {
                "message": "return deep('.rata-error').some((e) => e.getClientRects().length > 0"
                f" && (e.shadowRoot || e).textContent.includes({text!r}));"
            },
        )
        if "message" in seen:
            times["message"].append(seen["message"])
        time.sleep(0.3)
    type_into(page, "rata-param-fast", 10)
    return times


def _sweep_clicks(page: Any, n: int) -> dict[str, list[float]]:
    for name, (start, stop, step) in {"fast": (5, 50, 5), "slow": (20, 200, 20)}.items():
        type_into(page, f"rata-sweep-{name}-from", start)
        type_into(page, f"rata-sweep-{name}-to", stop)
        type_into(page, f"rata-sweep-{name}-step", step)
    time.sleep(0.3)
    times: dict[str, list[float]] = {"feedback": [], "heatmap": []}
    for _ in range(n):
        seen = click_and_time(
            page,
            ".rata-run-sweep >>> button",
            {
                "feedback": button_running("rata-run-sweep"),
                "heatmap": "return deep('.rata-heatmap >>> canvas')"
                ".some((c) => !c.__rataOld && c.getClientRects().length > 0);",
            },
            before="deep('.rata-heatmap >>> canvas').forEach((c) => { c.__rataOld = true; });",
            until=["feedback", "heatmap"],
            timeout_ms=120_000,
        )
        for key, values in times.items():
            if key in seen:
                values.append(seen[key])
        time.sleep(1.0)
    return times


def measure(quick: bool) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Serve the dashboard, open it in chromium and time the clicks; return times and refused URLs."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rata-bench-dash-") as tmp:
        log = Path(tmp) / "server.log"
        with dashboard_server("research", log) as url, sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_context(viewport={"width": 1600, "height": 1100}).new_page()
                page.set_default_timeout(120_000)
                refused = block_outside(page)
                page.goto(url)
                page.wait_for_selector('table.rata-stats[data-run="1"]')
                time.sleep(1.0)
                results = {
                    "Run backtest": _backtest_clicks(page, 6 if quick else 40),
                    "Invalid input": _invalid_clicks(page, 4 if quick else 20),
                    "Run sweep": _sweep_clicks(page, 2 if quick else 10),
                }
            finally:
                browser.close()
    return results, refused


def run(console: Console, *, quick: bool = False) -> list[RenderableType]:
    """Measure click-to-visible-change times and (unless `quick`) record them in RESULTS.md."""
    setup = [
        *machine_rows(PACKAGES),
        ("browser", f"{chromium_version()}, headless, {' '.join(FLAGS)}"),
        ("server", "`rata dashboard research` subprocess on 127.0.0.1, same machine"),
        ("viewport", "1600 x 1100"),
    ]
    with console.status("timing clicks in chromium..."):
        results, refused = measure(quick)
    header = ("click", "visible change", "n", "p50 ms", "p95 ms", "max ms", f"p95 < {TARGET_MS:.0f} ms")
    rows = []
    for click, kinds in results.items():
        for kind, values in kinds.items():
            n, p50, p95, worst = count_p50_p95_max(values)
            verdict = "-"
            if values and kind == "feedback":
                verdict = "PASS" if np.percentile(values, 95) < TARGET_MS else "FAIL"
            elif values:
                verdict = "(info)"
            rows.append((click, kind, n, p50, p95, worst, verdict))
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
    backtest_stats = results["Run backtest"]["stats"]
    notes = (
        'The first visible change of every click (the clicked button turning into "Running...", drawn by '
        "the browser without waiting for the server) is what the target applies to; `server` is when the "
        "server's acknowledgement arrives; the refusal message and the full result of a backtest (stats, "
        "then charts in the same patch) or of a sweep (the heatmap) follow after the server's work and the "
        "drawing. "
        f"Median backtest click to new stats: {statistics.median(backtest_stats):.0f} ms."
        if backtest_stats
        else "No backtest click completed."
    )
    if not quick:
        body = "\n\n".join(
            [
                "### Setup",
                markdown_table(("item", "value"), setup),
                "### Results",
                markdown_table(header, rows),
                notes,
                "Method: see the docstring of `tests/bench/bench_dashboard.py`.",
            ]
        )
        update_section(SECTION, body)
    return [
        rich_table("setup", ("item", "value"), setup),
        rich_table("click to visible change (ms)", header, rows),
        notes,
    ]
