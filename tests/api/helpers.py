"""A real runner API for tests: uvicorn on 127.0.0.1 in this event loop, a replay runner, users, clients.

`serve_api(database, tmp_path, ...)` starts the app of `runner.api.app.create_app` (lifespan and
all: database, migrations, the runner in replay mode on the shipped GOOG dataset) behind a real
uvicorn server on a free port, creates one user per role, and yields an `ApiServer` with helpers
to log in and to make clients. Tests reach the app's context (`server.ctx`) for what only the
server side can tell (the runner, the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import argon2
import httpx
import uvicorn
from cryptography.fernet import Fernet

from framework.security import LoginRateLimiter, Passwords, UserStore
from framework.settings import Settings
from framework.storage import Database
from runner.api.app import ApiOptions, create_app
from runner.api.context import ApiContext
from runner.config import FeedConfig, RunConfig, RunnerSection, StrategyConfig

FAST_ARGON2 = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8, parallelism=1
)
PASSWORDS = {"alice": "alice-admin-pw-1", "bob": "bob-trader-pw-1", "carol": "carol-viewer-pw-1"}
ROLES = {"alice": "admin", "bob": "trader", "carol": "viewer"}
JWT_SECRET = "test-signing-key-" + "k" * 60
SECONDS_PER_BAR = 0.05
"""Replay pace: one GOOG daily bar every 50 ms, so a test sees bars (and fills) within a second."""


def replay_config(tmp_path: Path, *, strategies: list[StrategyConfig] | None = None, **runner: Any) -> RunConfig:
    """Return a replay run config on the GOOG dataset, paced at `SECONDS_PER_BAR` per daily bar."""
    section = RunnerSection(mode="replay", paper_dir=tmp_path / "paper", snapshot_every_s=86_400.0, **runner)
    feed = FeedConfig(kind="replay", dataset="GOOG", speed=86_400 / SECONDS_PER_BAR)
    return RunConfig(runner=section, feed=feed, strategies=strategies or []).check()


@dataclass
class ApiServer:
    """A running API: its base URL, app context, and the passwords of its users."""

    base_url: str
    ctx: ApiContext
    server: uvicorn.Server

    @property
    def ws_url(self) -> str:
        """Return the WebSocket URL."""
        return self.base_url.replace("http://", "ws://") + "/api/v1/ws"

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        """Return an HTTP client on the server (with a bearer token when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30.0)

    async def login(self, username: str) -> dict[str, Any]:
        """Log `username` in with its password; return the token response."""
        async with self.client() as http:
            response = await http.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORDS[username]}
            )
        assert response.status_code == 200, response.text
        return response.json()

    async def token(self, username: str) -> str:
        """Return a fresh access token of `username`."""
        return str((await self.login(username))["access_token"])


def _free_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits out the peer's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_api(
    database: Database,
    tmp_path: Path,
    *,
    run_config: RunConfig | None = None,
    options: ApiOptions | None = None,
    **settings: Any,
) -> AsyncIterator[ApiServer]:
    """Start the app behind uvicorn on a free port of 127.0.0.1; stop it on exit."""
    passwords = Passwords(FAST_ARGON2)
    store = UserStore(database.pool, passwords=passwords, limiter=LoginRateLimiter())
    for name, role in ROLES.items():
        await store.add(name, PASSWORDS[name], role)
    config = Settings(
        DATABASE_URL=database.dsn,
        data_dir=tmp_path / "data",
        jwt_secret=JWT_SECRET,
        master_key=Fernet.generate_key().decode(),
        **settings,
    )
    opts = options or ApiOptions(passwords=passwords, stop_timeout_s=30.0)
    app = create_app(config, run_config or replay_config(tmp_path), options=opts)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", ws_ping_interval=None))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.02)
        yield ApiServer(f"http://127.0.0.1:{port}", app.state.api, server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)
        sock.close()


async def wait_for(predicate: Any, timeout_s: float = 30.0, every_s: float = 0.05) -> Any:
    """Poll `predicate()` (sync or async) until it returns something truthy; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every_s)
