"""The live dashboard's REST client: log in, keep the access token fresh, call the runner API.

One `ApiClient` per browser session, holding that user's tokens (never shared between sessions).
Every call sends `Authorization: Bearer <access token>`; a refusal (any 4xx or 5xx answer) raises
`ApiRefusal` with the API's stable `code` and its human `reason`, which the page shows as is.

The access token is short-lived (`expires_in`, ten minutes by default): `refresh_due()` says how
long until it should be rotated (at 80% of its life), `refresh()` rotates it with the refresh
token, and a call answered 401 `invalid_token` is retried once after a refresh.

>>> client = ApiClient("http://127.0.0.1:8000")                    # doctest: +SKIP
>>> await client.login("alice", "correct horse battery")             # doctest: +SKIP
>>> await client.get("/risk")                                        # doctest: +SKIP
{'state': 'active', 'reason': '', 'scopes': [...]}
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["API_PREFIX", "ApiClient", "ApiRefusal", "Login"]

API_PREFIX = "/api/v1"
REFRESH_AT = 0.8
"""Rotate the access token once this fraction of its life has passed."""


class ApiRefusal(Exception):
    """The API refused a call (or could not be reached): status, stable code and a reason for a person."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.status} {self.code}" if self.status else self.code
        return f"{self.reason} ({where})"


@dataclass(frozen=True, slots=True)
class Login:
    """Who is logged in, and when their access token was issued and expires (monotonic seconds)."""

    username: str
    role: str
    access_token: str
    refresh_token: str
    issued_at: float
    expires_at: float

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Login:
        """Return the login of a `TokenResponse` body, timed from now."""
        now = time.monotonic()
        return cls(
            username=str(body["username"]),
            role=str(body["role"]),
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            issued_at=now,
            expires_at=now + float(body["expires_in"]),
        )


def _refusal(response: httpx.Response) -> ApiRefusal:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "reason" in body:
        return ApiRefusal(response.status_code, str(body.get("code", "error")), str(body["reason"]))
    return ApiRefusal(response.status_code, f"http_{response.status_code}", response.reason_phrase or "refused")


class ApiClient:
    """REST calls to one runner API on behalf of one logged-in user; see the module docstring."""

    def __init__(self, base_url: str, *, timeout_s: float = 15.0, transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._login: Login | None = None
        self._refreshing = asyncio.Lock()

    @property
    def ws_url(self) -> str:
        """Return the URL of the API's WebSocket."""
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{API_PREFIX}/ws"

    @property
    def login_info(self) -> Login | None:
        """Return the current login, or None."""
        return self._login

    @property
    def token(self) -> str:
        """Return the current access token (raise `ApiRefusal` when logged out)."""
        if self._login is None:
            raise ApiRefusal(401, "logged_out", "log in first")
        return self._login.access_token

    async def login(self, username: str, password: str) -> Login:
        """Exchange a username and password for tokens; raise `ApiRefusal` when refused."""
        body = await self._send("POST", "/auth/login", json={"username": username, "password": password}, auth=False)
        self._login = Login.from_response(body)
        return self._login

    def refresh_due(self) -> float:
        """Return the seconds until the access token should be refreshed (0 when it is due)."""
        login = self._login
        if login is None:
            return 0.0
        due = login.issued_at + REFRESH_AT * (login.expires_at - login.issued_at)
        return max(0.0, due - time.monotonic())

    async def refresh(self) -> Login:
        """Rotate the tokens (once, however many callers ask at the same time)."""
        login = self._login
        if login is None:
            raise ApiRefusal(401, "logged_out", "log in first")
        async with self._refreshing:
            if self._login is not login:  # another caller refreshed meanwhile
                assert self._login is not None
                return self._login
            body = await self._send("POST", "/auth/refresh", json={"refresh_token": login.refresh_token}, auth=False)
            self._login = Login.from_response(body)
            return self._login

    async def logout(self) -> None:
        """End the session on the server (best effort) and forget the tokens."""
        login, self._login = self._login, None
        if login is None:
            return
        headers = {"Authorization": f"Bearer {login.access_token}"}
        with contextlib.suppress(httpx.HTTPError):  # the tokens expire on their own
            await self._http.post(
                f"{API_PREFIX}/auth/logout", json={"refresh_token": login.refresh_token}, headers=headers
            )

    async def get(self, path: str, **params: Any) -> Any:
        """GET `path` (under /api/v1) with query `params` (None values dropped); return the JSON body."""
        return await self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body; return the JSON answer."""
        return await self.call("POST", path, json=body or {})

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        """PATCH a JSON body; return the JSON answer."""
        return await self.call("PATCH", path, json=body)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Make an authenticated call; refresh and retry once if the access token was refused."""
        try:
            return await self._send(method, path, **kwargs)
        except ApiRefusal as exc:
            if exc.status != 401 or self._login is None:
                raise
        await self.refresh()
        return await self._send(method, path, **kwargs)

    async def metrics_text(self) -> str:
        """Return the Prometheus exposition of `/metrics` (no token needed)."""
        try:
            response = await self._http.get("/metrics")
        except httpx.HTTPError as exc:
            raise ApiRefusal(0, "unreachable", f"the API at {self.base_url} does not answer: {exc}") from None
        if response.status_code != 200:
            raise _refusal(response)
        return response.text

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        try:
            response = await self._http.request(method, API_PREFIX + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiRefusal(0, "unreachable", f"the API at {self.base_url} does not answer: {exc}") from None
        if response.status_code >= 400:
            raise _refusal(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
