"""A real runner and the live dashboard for browser tests and benchmarks: processes, users, a logged-in page.

- `fresh_database(admin_dsn)`: a new, migrated PostgreSQL database (dropped afterwards) with one
  user per role (`alice` admin, `bob` trader, `carol` viewer; the API tests' passwords);
- `runner_process(dsn, folder)`: `rata serve --mode dev` in a subprocess on a free port: a synthetic
  feed over `INSTRUMENTS` instruments, the paper venue, two shipped strategies on 1s bars
  (`sma-fast`, running, and `rsi-1s`, stopped); stopped with SIGINT;
- `live_dashboard(api_url, log)`: `rata dashboard live --api ...` in a subprocess on a free port;
- `log_in(page, url, username)`: open the page, log in, wait for the chart's first candles;
- `Api`: a synchronous client of the runner for what the tests check behind the page's back.

Nothing is faked: the page talks to the dashboard server, which talks to the runner's REST API
and WebSocket, which trades on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from tests.api.helpers import FAST_ARGON2, JWT_SECRET, PASSWORDS, ROLES
from tests.dashboards.browser import REPO, free_port

T = TypeVar("T")
RATA = [sys.executable, "-c", "from runner.cli import main; main()"]
INSTRUMENTS = 20
TICKS_PER_SECOND = 200
RUNNER_TOML = f"""
[runner]
mode = "dev"
bar_close_delay_s = 0.2
snapshot_every_s = 5

[feed]
kind = "synthetic"
instruments = {INSTRUMENTS}
rate = {TICKS_PER_SECOND}
seed = 7

[broker]
kind = "paper"

[[strategies]]
id = "sma-fast"
strategy = "sma_cross"
params = {{ fast = 3, slow = 8 }}
symbols = 5
timeframe = "1s"
capital = 100000
state = "running"

[[strategies]]
id = "rsi-1s"
strategy = "rsi_reversion"
params = {{ window = 5 }}
symbols = 5
timeframe = "1s"
capital = 100000
state = "stopped"
"""


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _create(admin_dsn: str, name: str) -> str:
    from framework.security import Passwords, UserStore
    from framework.storage import apply_migrations, connect_dsn

    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(admin_dsn, name)
    pool = await connect_dsn(dsn, min_size=1, max_size=2)
    try:
        await apply_migrations(pool)
        users = UserStore(pool, passwords=Passwords(FAST_ARGON2))
        for username, role in ROLES.items():
            await users.add(username, PASSWORDS[username], role)
    finally:
        await pool.close()
    return dsn


async def _drop(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion in a thread of its own (playwright's sync API owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """Yield the DSN of a new migrated database with the three users; drop it afterwards."""
    name = f"rata_live_{uuid.uuid4().hex[:12]}"
    dsn = _run(_create(admin_dsn, name))
    try:
        yield dsn
    finally:
        _run(_drop(admin_dsn, name))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up (exit {proc.poll()}):\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@dataclass(frozen=True)
class Runner:
    """A running `rata serve`: its base URL and log file."""

    url: str
    log: Path


@contextlib.contextmanager
def runner_process(
    dsn: str, folder: Path, *, toml: str = RUNNER_TOML, env: dict[str, str] | None = None, timeout: float = 240.0
) -> Iterator[Runner]:
    """Run `rata serve --mode dev` on `dsn` in a subprocess on a free port; yield it once /ready answers."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "rata.toml"
    config.write_text(toml)
    port = free_port()
    log = folder / "runner.log"
    environment = {
        **os.environ,
        "DATABASE_URL": dsn,
        "RATA_DATA_DIR": str(folder / "data"),
        "RATA_JWT_SECRET": JWT_SECRET,
        **(env or {}),
    }
    command = [*RATA, "serve", "--config", str(config), "--mode", "dev", "--port", str(port), "--log-level", "warning"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(f"{url}/api/v1/ready", proc, log, timeout)
        yield Runner(url, log)
    finally:
        _stop(proc)


@contextlib.contextmanager
def live_dashboard(api_url: str, log: Path, *, timeout: float = 240.0) -> Iterator[str]:
    """Serve `rata dashboard live --api API_URL` on a free port; yield the page URL; stop it with Ctrl-C."""
    port = free_port()
    command = [*RATA, "dashboard", "live", "--api", api_url, "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/live"
    try:
        _wait_up(url, proc, log, timeout)
        yield url
    finally:
        _stop(proc)


class Api:
    """A synchronous client of the runner, logged in as one user (what the tests check the page against)."""

    def __init__(self, base_url: str, username: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=30.0)
        self.username = username
        self._login()

    def _login(self) -> None:
        body = {"username": self.username, "password": PASSWORDS[self.username]}
        response = self.http.post("/auth/login", json=body)
        response.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code == 401:  # the access token expired: log in again
            self._login()
            response = self.http.request(method, path, **kwargs)
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` and return its JSON (raise on an error status)."""
        response = self._send("GET", path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """POST `body` to `path` and return the response."""
        return self._send("POST", path, json=body or {})

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


def log_in(page: Any, url: str, username: str, password: str | None = None) -> None:
    """Open the live page, log in as `username`, and wait until the chart holds candles."""
    page.goto(url)
    page.locator(".rata-login-username input").fill(username)
    page.locator(".rata-login-password input").fill(password or PASSWORDS[username])
    page.locator(".rata-login button").click()
    page.locator('.rata-stream[data-status="live"]').wait_for()
    page.wait_for_function(
        "() => { const d = window.Bokeh && window.Bokeh.documents[0];"
        " const s = d && d.get_model_by_name('rata-live-candles');"
        " const t = s && (s.data.get ? s.data.get('time') : s.data.time); return !!t && t.length > 0; }"
    )
