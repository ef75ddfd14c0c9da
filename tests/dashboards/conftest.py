"""Fixtures for the dashboards' browser tests: chromium under playwright, a served dashboard, a page.

The browser and the server live for one test module (a module's tests share one server, each test
gets a fresh page and so a fresh session). The server reads stored bars from a database of its
own on the embedded PostgreSQL of `tests/db.py`. Screenshots go to the test's tmp dir and are
copied to `reports/screenshots/` (ignored by git) so they survive the run.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import pandas as pd
import pytest

from framework import Instrument
from framework.data.store import import_frame
from framework.storage import apply_migrations, connect_dsn
from tests.dashboards.browser import REPO, block_outside, dashboard_server, launch

SCREENSHOTS = REPO / "reports" / "screenshots"
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Yield Debian's chromium, headless, driven by playwright (module-scoped)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: install the dev extras (`make install`)")
    with sync_playwright() as playwright:
        try:
            chromium = launch(playwright)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield chromium
        chromium.close()


STORED_SYMBOL = "ACME"


def stored_frame() -> pd.DataFrame:
    """Return the daily OHLCV bars (indexed by open time) stored for the dashboard's stored-bars tests."""
    days = pd.date_range("2023-01-02", periods=400, freq="1D", tz="UTC")
    rng = np.random.default_rng(11)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(days)))), index=days)
    open_ = close.shift(fill_value=100.0)
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1_000.0})


async def _create_stored_bars(admin_dsn: str, name: str) -> str:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(admin_dsn)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    pool = await connect_dsn(dsn, min_size=1, max_size=2)
    try:
        await apply_migrations(pool)
        await import_frame(pool, stored_frame(), Instrument(STORED_SYMBOL, venue="NYSE"), "1d")
    finally:
        await pool.close()
    return dsn


async def _drop(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Return `func(*args)` called in a fresh thread.

    Playwright's sync API runs an event loop in the test's thread, so code that calls
    `asyncio.run` (the database helpers, `load_bars`) must run in a thread of its own.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args).result()


@pytest.fixture(scope="module")
def stored_bars_dsn(admin_dsn: str) -> Iterator[str]:
    """Yield the DSN of a migrated database holding 400 daily bars of ACME (dropped afterwards)."""
    name = f"rata_dash_{uuid.uuid4().hex[:12]}"
    dsn = in_thread(asyncio.run, _create_stored_bars(admin_dsn, name))
    yield dsn
    in_thread(asyncio.run, _drop(admin_dsn, name))


@pytest.fixture(scope="module")
def research_url(tmp_path_factory: pytest.TempPathFactory, stored_bars_dsn: str) -> Iterator[str]:
    """Serve the research dashboard (`rata dashboard research`) on the stored-bars database; yield its URL."""
    log = tmp_path_factory.mktemp("research-server") / "server.log"
    with dashboard_server("research", log, env={"DATABASE_URL": stored_bars_dsn}) as url:
        yield url


@dataclass
class Page:
    """A browser page on a dashboard, with what it tried to fetch from outside and its console errors."""

    page: Any
    refused: list[str]
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def shoot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any, str], Path]:
    """Return `shoot(page, name)`: save a full-page screenshot as a test artifact, keep a copy."""

    def save(page: Any, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{request.node.name}-{name}")
        path = tmp_path / f"{stem}.png"
        page.screenshot(path=str(path), full_page=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, SCREENSHOTS / path.name)
        return path

    return save


@pytest.fixture
def research(browser: Any, research_url: str) -> Iterator[Page]:
    """Yield a fresh page on the research dashboard, after its on-load backtest has shown."""
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(120_000)
    opened = Page(page=page, refused=block_outside(page))
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.goto(research_url)
    page.wait_for_selector('table.rata-stats[data-run="1"]')
    yield opened
    context.close()
