"""Declared strategy parameters.

A parameter is declared once on a strategy class, with its type (taken from the default), default
and bounds. That one declaration validates values, builds sweep grids within bounds and, later,
drives REST validation and dashboard widgets (`Param.describe`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np

from framework.errors import ParameterError

__all__ = ["Param", "ParamValue"]

ParamValue = bool | int | float | str
T = TypeVar("T", bool, int, float, str)


@dataclass(frozen=True, slots=True)
class Param(Generic[T]):
    """One declared strategy parameter.

    The type is the type of `default` (bool, int, float or str). Numeric parameters take inclusive
    `bounds`; string parameters may list their `choices`.

    >>> class S:
    ...     fast = Param(10, bounds=(2, 200), doc="fast SMA window")
    """

    default: T
    bounds: tuple[float, float] | None = None
    choices: tuple[ParamValue, ...] | None = None
    doc: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.default, bool | int | float | str):
            raise TypeError(f"Param default must be bool, int, float or str, not {type(self.default).__name__}")
        if self.bounds is not None:
            if self.kind not in (int, float):
                raise TypeError("bounds only apply to int and float parameters")
            low, high = self.bounds
            if not low <= high:
                raise TypeError(f"bounds {self.bounds} are not ordered")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "name", name)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Param[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Param[T] | T:
        """On the class, return the declaration; on an instance, its value (set by `Strategy.__init__`)."""
        if obj is None:
            return self
        value: T = obj.__dict__["_values"][self.name]
        return value

    @property
    def kind(self) -> type:
        """Return the parameter's type: bool, int, float or str."""
        return type(self.default)

    def validate(self, value: Any) -> ParamValue:
        """Return `value` coerced to this parameter's type, or raise `ParameterError` saying why."""
        kind = self.kind
        value = _coerce(value, kind, self.name)
        if kind in (int, float):
            if isinstance(value, float) and not math.isfinite(value):
                raise ParameterError(f"parameter {self.name!r} must be finite, got {value}")
            if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
                low, high = _fmt(self.bounds[0]), _fmt(self.bounds[1])
                raise ParameterError(f"parameter {self.name!r} = {value} is out of bounds [{low}, {high}]")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} = {value!r} is not one of {list(self.choices)}")
        return value

    def grid(
        self, start: float | None = None, stop: float | None = None, step: float | None = None
    ) -> list[ParamValue]:
        """Return the values from `start` up to `stop` inclusive (bounds by default), every `step`.

        Floats without a step take ten steps; a step that does not divide the range stops at the
        last value not beyond `stop`.
        """
        if self.kind is bool:
            return [False, True]
        if self.choices is not None:
            return list(self.choices)
        if self.bounds is None:
            raise ParameterError(f"parameter {self.name!r} has no bounds; give explicit values")
        low = self.bounds[0] if start is None else start
        high = self.bounds[1] if stop is None else stop
        if step is not None and not step > 0:
            raise ParameterError(f"grid step for {self.name!r} must be positive, got {step}")
        if self.kind is int:
            values: Sequence[Any] = range(int(low), int(high) + 1, int(step or 1))
        elif high == low:
            values = [float(low)]
        else:
            increment = step or (high - low) / 10
            count = int(np.floor((high - low) / increment + 1e-9)) + 1
            values = [round(float(low + i * increment), 12) for i in range(count)]
        return [self.validate(v) for v in values]

    def describe(self) -> dict[str, Any]:
        """Return the declaration as plain data (for JSON, REST schemas and widgets)."""
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "bounds": list(self.bounds) if self.bounds is not None else None,
            "choices": list(self.choices) if self.choices is not None else None,
            "doc": self.doc,
        }


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _coerce(value: Any, kind: type, name: str) -> ParamValue:
    if isinstance(value, np.generic):
        value = value.item()
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ParameterError(f"parameter {name!r} must be a bool, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} must be an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ParameterError(f"parameter {name!r} must be an int, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ParameterError(f"parameter {name!r} must be a number, got {value!r}")
    if isinstance(value, str):
        return value
    raise ParameterError(f"parameter {name!r} must be a string, got {value!r}")
