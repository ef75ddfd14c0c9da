"""API errors: every refusal is a 4xx with a machine-readable `code` and a human `reason`.

Handlers raise `ApiError` (or let a `framework.errors.RejectedError` through, which maps by its
type); request validation errors become 422 `invalid_<field>` without echoing the submitted value
(it may be a password). Only a bug yields a 500, and its body says nothing about the internals.

| raised | status | code |
|---|---|---|
| `ApiError(status, code, reason)` | as given | as given |
| invalid body or query | 422 | `invalid_<field>`, `missing_<field>`, `unknown_field`, `invalid_request` |
| `UnknownNameError` | 404 | `unknown_<kind>` (`unknown_strategy`, `unknown_instrument`...) |
| `RiskRefusedError` | 422 | `risk_refused` (with `rule`) |
| `ParameterError` | 422 | `invalid_parameter` |
| `DataError` | 404 | `no_data` |
| `AuthenticationError` / `InvalidTokenError` | 401 | `invalid_credentials` / `invalid_token` |
| `LoginRateLimited` | 429 | `rate_limited` (with `Retry-After`) |
| `PermissionDenied` | 403 | `forbidden` |
| `CredentialError` | 409 | `credentials_unavailable` |
| another `RejectedError` | 409 | `rejected` |
| `TransientError`, a lost database connection | 503 | `unavailable` (with `Retry-After`) |
| a value PostgreSQL cannot store (a NUL character...) | 422 | `invalid_value` |
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from framework.errors import DataError, ParameterError, RejectedError, TransientError, UnknownNameError
from framework.risk.decision import RiskRefusedError
from framework.security.errors import (
    AuthenticationError,
    CredentialError,
    InvalidTokenError,
    LoginRateLimited,
    PermissionDenied,
)
from runner.api.schemas import ErrorBody

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "as_api_error",
    "error_body",
    "in_body",
    "install_error_handlers",
    "unknown_code",
]

log = logging.getLogger(__name__)

_ERROR_MODEL: dict[str, Any] = {"model": ErrorBody}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR_MODEL, "description": "Bad request"},
    401: {**_ERROR_MODEL, "description": "Missing, invalid or expired token"},
    403: {**_ERROR_MODEL, "description": "The role does not allow this"},
    404: {**_ERROR_MODEL, "description": "Unknown resource or name"},
    409: {**_ERROR_MODEL, "description": "Refused in the current state"},
    422: {**_ERROR_MODEL, "description": "Invalid input"},
    429: {**_ERROR_MODEL, "description": "Too many requests"},
    503: {**_ERROR_MODEL, "description": "The runner is not running"},
}
"""The error answers every route documents (FastAPI's own 422 schema is replaced by `ErrorBody`)."""

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """A refusal with its HTTP status, stable code and reason (plus optional extra fields of `ErrorBody`)."""

    def __init__(self, status: int, code: str, reason: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.headers = headers
        self.extra = extra


def error_body(code: str, reason: str, **extra: Any) -> dict[str, Any]:
    """Return the JSON of an `ErrorBody` (validated: the schema stays the contract)."""
    return ErrorBody(code=code, reason=reason, **extra).model_dump(mode="json", exclude_none=True)


def _respond(status: int, code: str, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, reason, **extra), status_code=status, headers=headers)


def as_api_error(exc: RejectedError) -> ApiError:
    """Return the `ApiError` a framework refusal maps to (see the module table)."""
    if isinstance(exc, UnknownNameError):
        return ApiError(404, unknown_code(exc), str(exc))
    if isinstance(exc, RiskRefusedError):
        return ApiError(422, "risk_refused", str(exc), rule=str(exc.rule))
    if isinstance(exc, ParameterError):
        return ApiError(422, "invalid_parameter", str(exc))
    if isinstance(exc, DataError):
        return ApiError(404, "no_data", str(exc))
    if isinstance(exc, LoginRateLimited):
        return ApiError(429, "rate_limited", str(exc), headers={"Retry-After": f"{exc.retry_after_s:.0f}"})
    if isinstance(exc, AuthenticationError):
        return ApiError(401, "invalid_credentials", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, InvalidTokenError):
        return ApiError(401, "invalid_token", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDenied):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, CredentialError):
        return ApiError(409, "credentials_unavailable", str(exc))
    return ApiError(409, "rejected", str(exc))


def unknown_code(exc: UnknownNameError) -> str:
    """Return `unknown_<kind>` for an unknown name ("parameter of sma_cross" is a `parameter`)."""
    return "unknown_" + exc.kind.split(" of ")[0].strip().replace(" ", "_")


@contextmanager
def in_body() -> Iterator[None]:
    """Treat unknown names as invalid input (422): in a request body they are not missing resources (404)."""
    try:
        yield
    except UnknownNameError as exc:
        raise ApiError(422, unknown_code(exc), str(exc)) from None


def _field_code(loc: tuple[Any, ...], kind: str) -> str:
    if kind == "extra_forbidden":
        return "unknown_field"
    names = [str(part) for part in loc[1:] if isinstance(part, str)]
    if not names:
        return "invalid_request"
    return f"missing_{names[0]}" if kind == "missing" else f"invalid_{names[0]}"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc.status, exc.code, exc.reason, exc.headers, **exc.extra)


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RejectedError)
    mapped = as_api_error(exc)
    return _respond(mapped.status, mapped.code, mapped.reason, mapped.headers, **mapped.extra)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [p for p in e.get("loc", ()) if isinstance(p, str | int)], "msg": e.get("msg", ""), "type": e["type"]}
        for e in exc.errors()
    ]
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": "invalid"}
    loc = tuple(first.get("loc", ()))
    where = ".".join(str(p) for p in loc[1:]) or "request"
    code = _field_code(loc, str(first.get("type", "")))
    return _respond(422, code, f"{where}: {first.get('msg', 'invalid')}", errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers) if exc.headers else None
    return _respond(exc.status_code, code, str(exc.detail), headers)


async def _transient(request: Request, exc: Exception) -> JSONResponse:
    log.warning("transient failure on %s %s: %s", request.method, request.url.path, exc)
    return _respond(503, "unavailable", f"temporarily unavailable, try again: {exc}", {"Retry-After": "1"})


async def _database(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, asyncpg.DataError):
        return _respond(422, "invalid_value", f"a value the database cannot store: {type(exc).__name__}")
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _respond(503, "unavailable", "the database is unavailable; try again", {"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _respond(500, "internal_error", "internal error; the runner's log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers of the module table on `app`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RejectedError, _rejected)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(TransientError, _transient)
    for database_error in (asyncpg.DataError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        app.add_exception_handler(database_error, _database)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
