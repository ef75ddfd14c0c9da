"""Shared schema pieces: the strict base model, the error body, health and readiness."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

__all__ = ["DecimalIn", "ErrorBody", "FieldError", "HealthOut", "Money", "ReadyOut", "Reason", "Schema", "Time"]

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_time(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_TIME.match(value)):
        return value
    raise ValueError("give an ISO 8601 time with a UTC offset, e.g. 2024-01-31T00:00:00Z")


Time = Annotated[AwareDatetime, BeforeValidator(_iso_time)]
"""A time given as ISO 8601 text with an offset (a bare number or a naive time is refused)."""

Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
"""Free text a person gives (why the kill switch, why a release): no NUL character."""


def _plain(value: Decimal) -> str:
    return format(value, "f")


Money = Annotated[Decimal, PlainSerializer(_plain, return_type=str, when_used="json")]
"""A decimal output: a string in plain notation ("100000", never "1.0E+5"), exact."""

DecimalIn = Annotated[Decimal, Field(allow_inf_nan=True), PlainSerializer(_plain, return_type=str, when_used="json")]
"""A decimal input (a JSON string, or a number): NaN and infinities pass here so the API can refuse
them with its own `non_finite_*` codes. Written back as `Money` is."""


class Schema(BaseModel):
    """Base of every API schema: unknown fields are refused, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(Schema):
    """One invalid field of a request (its value is never echoed back)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(Schema):
    """Every 4xx and 5xx answer: a stable machine-readable `code` and a human `reason`."""

    code: str = Field(description="machine-readable, stable: e.g. unknown_symbol, risk_refused, invalid_token")
    reason: str = Field(description="what went wrong, for a person")
    rule: str | None = Field(None, description="the risk rule that refused an order (code risk_refused)")
    client_id: str | None = Field(None, description="the order concerned, when one was recorded")
    errors: list[FieldError] | None = Field(None, description="the invalid fields of a request")


class HealthOut(Schema):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class ReadyOut(Schema):
    """Readiness: the runner trades and the database answers."""

    ready: bool
    mode: str
    runner: Literal["starting", "running", "stopped", "failed"]
    database: bool
    reconciled: bool
    trading_state: str | None
    reason: str = ""
