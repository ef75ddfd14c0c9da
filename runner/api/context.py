"""`ApiContext`: what one app instance serves: the runner, the security stores, metrics and options.

One context per `create_app` (kept in `app.state.api`, never a module global), filled by the
lifespan once the database is open and the runner started; handlers reach it through the
`get_context`, `get_runner` and `live_runner` dependencies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

import asyncpg
from fastapi import Depends, Request

from framework.security import AuditLog, CredentialStore, MasterKeys, Passwords, TokenService, UserStore
from framework.settings import Settings
from runner.api.errors import ApiError
from runner.api.events import RunnerEvents
from runner.config import RunConfig
from runner.metrics import RunnerMetrics
from runner.service import Runner

__all__ = [
    "ApiContext",
    "ApiOptions",
    "Ctx",
    "LiveRunner",
    "RunnerDep",
    "RunnerFactory",
    "get_context",
    "get_runner",
    "live_runner",
]

RunnerFactory = Callable[[RunConfig, Settings, asyncpg.Pool], Awaitable[Runner]]
"""Build an unstarted runner (`runner.wiring.build_runner` by default)."""


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Service options that are not deployment settings.

    - `cors_origins`: browser origins allowed to call the API (none by default: CORS closed).
    - `ws_queue_size`: messages a WebSocket client may have waiting before it is disconnected.
    - `ws_close_timeout_s`: how long closing a slow client may wait for its socket to drain.
    - `max_ws_clients`: WebSocket connections served at once.
    - `telemetry_interval_s`: how often metrics are sampled and equity published.
    - `stop_timeout_s`: how long the lifespan waits for the runner to stop.
    - `backtests_kept`: finished backtests kept in memory (oldest dropped first).
    - `passwords`: the password hasher (tests pass a cheap argon2id profile).
    """

    cors_origins: tuple[str, ...] = ()
    ws_queue_size: int = 1024
    ws_close_timeout_s: float = 5.0
    max_ws_clients: int = 256
    telemetry_interval_s: float = 1.0
    stop_timeout_s: float = 60.0
    backtests_kept: int = 32
    passwords: Passwords | None = None


@dataclass
class ApiContext:
    """The state of one app instance; see the module docstring."""

    settings: Settings
    run_config: RunConfig
    options: ApiOptions
    runner_factory: RunnerFactory | None = None
    pool: asyncpg.Pool | None = None
    users: UserStore | None = None
    tokens: TokenService | None = None
    audit: AuditLog | None = None
    credentials: CredentialStore | None = None
    metrics: RunnerMetrics = field(default_factory=RunnerMetrics)
    runner: Runner | None = None
    run_task: asyncio.Task[None] | None = None
    start_error: str = ""

    @property
    def events(self) -> RunnerEvents:
        """Return the runner's event hooks (the WebSocket hub is `events.hub`)."""
        if self.runner is None:
            raise ApiError(503, "runner_unavailable", "the runner is not started")
        return self.runner.events

    def bind(self, pool: asyncpg.Pool) -> None:
        """Open the security stores on the database."""
        self.pool = pool
        self.audit = AuditLog(pool)
        self.users = UserStore(pool, passwords=self.options.passwords, audit=self.audit)
        self.tokens = TokenService.from_settings(pool, self.settings)
        self.credentials = CredentialStore(pool, MasterKeys.from_settings(self.settings))

    @property
    def runner_state(self) -> Literal["starting", "running", "stopped", "failed"]:
        """Return where the runner is: starting, running, stopped (the feed ended, or shut down) or failed."""
        task = self.run_task
        if self.start_error:
            return "failed"
        if task is None:
            return "starting"
        if not task.done():
            return "running"
        return "failed" if not task.cancelled() and task.exception() is not None else "stopped"

    def db(self) -> asyncpg.Pool:
        """Return the database pool (503 before it is open)."""
        if self.pool is None:
            raise ApiError(503, "starting", "the service is starting")
        return self.pool

    def store(self) -> tuple[UserStore, TokenService, AuditLog]:
        """Return the user store, token service and audit log (503 before the database is open)."""
        if self.users is None or self.tokens is None or self.audit is None:
            raise ApiError(503, "starting", "the service is starting")
        return self.users, self.tokens, self.audit


def get_context(request: Request) -> ApiContext:
    """Dependency: the app's context."""
    context: ApiContext = request.app.state.api
    return context


Ctx = Annotated[ApiContext, Depends(get_context)]


def get_runner(ctx: Ctx) -> Runner:
    """Dependency: the runner (also after it stopped: its book can still be read)."""
    runner = ctx.runner
    if runner is None or runner.orders is None or runner.engine is None or runner.risk is None:
        raise ApiError(503, "runner_unavailable", "the runner is not started")
    return runner


def live_runner(ctx: Ctx) -> Runner:
    """Dependency: the runner while it runs (a stopped runner takes no orders nor changes)."""
    runner = get_runner(ctx)
    if ctx.runner_state != "running":
        raise ApiError(503, "runner_stopped", f"the runner is {ctx.runner_state}; it takes no orders or changes")
    return runner


RunnerDep = Annotated[Runner, Depends(get_runner)]
LiveRunner = Annotated[Runner, Depends(live_runner)]
