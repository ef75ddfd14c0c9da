"""The strategy contract: one class, backtested in research and run unchanged live.

A strategy declares its parameters with `Param`, its warm-up, and one pure, causal, vectorised
method, `signals(data)`, computed over a whole `Bars` panel at once. The backtest calls it once
over the whole history; the live engine calls it at each bar close over a rolling window and acts
on the last row. Same function, two callers. Optionally, `indicators(data)` names the series
`signals()` decides on (`Indicator`s: over the price or in a pane of their own) for the charts.

>>> from framework import Bars, Param, Signals, Strategy
>>> class SmaCross(Strategy):
...     '''Go long when the fast SMA crosses above the slow one.'''
...     fast = Param(10, bounds=(2, 200))
...     slow = Param(20, bounds=(5, 400))
...     warmup = "slow"
...     def signals(self, data: Bars) -> Signals:
...         fast = data.close.rolling(self.fast).mean()
...         slow = data.close.rolling(self.slow).mean()
...         above = fast > slow
...         return Signals(entries=above & ~above.shift(fill_value=False),
...                        exits=~above & above.shift(fill_value=False))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from framework.bars import Bars
from framework.errors import StrategyError, UnknownNameError
from framework.params import Param, ParamValue

__all__ = ["Decision", "DecisionArrays", "Indicator", "Signals", "Strategy", "TargetWeights", "resolve_params"]


@dataclass(frozen=True, eq=False)
class Signals:
    """Boolean entry/exit frames (rows = bar close times, columns = instruments).

    A signal at bar t is a decision taken at t's close. Short signals may be left out (long only).
    """

    entries: pd.DataFrame
    exits: pd.DataFrame
    short_entries: pd.DataFrame | None = None
    short_exits: pd.DataFrame | None = None

    @property
    def allows_short(self) -> bool:
        """Return whether the strategy emitted short signals."""
        return self.short_entries is not None or self.short_exits is not None

    def frames(self) -> dict[str, pd.DataFrame]:
        """Return the non-empty signal frames by name."""
        names = ("entries", "exits", "short_entries", "short_exits")
        return {n: f for n in names if (f := getattr(self, n)) is not None}


@dataclass(frozen=True, eq=False)
class TargetWeights:
    """Target fraction of the strategy's equity per instrument (negative = short).

    NaN means "no decision at this bar, keep what is held"; a number is a rebalance to that weight.
    The weights of one row should sum (in absolute value) to at most 1.
    """

    weights: pd.DataFrame

    @property
    def allows_short(self) -> bool:
        """Return whether any weight is negative."""
        return bool((self.weights < 0).to_numpy().any())


Decision = Signals | TargetWeights


@dataclass(frozen=True, eq=False)
class Indicator:
    """A series a strategy wants drawn with its bars: the frame, and whether it overlays the price.

    `frame` has the bars' index and columns (a Series is accepted for a one-instrument panel).
    `overlay=True` draws it on the price chart, on the price's scale (a moving average, a band);
    `overlay=False` draws it in a pane of its own under the chart (an oscillator, a return, and the
    levels it is compared with). Make a constant line, such as an RSI threshold, with `level`.
    """

    frame: pd.DataFrame
    overlay: bool = True

    @classmethod
    def level(cls, data: Bars, value: float, *, overlay: bool = False) -> Indicator:
        """Return a constant line at `value` over every bar and instrument of `data` (own pane by default)."""
        return cls(pd.DataFrame(float(value), index=data.index, columns=data.close.columns), overlay)


@dataclass(frozen=True, slots=True)
class DecisionArrays:
    """A checked decision as plain arrays (rows x instruments): what simulations consume.

    `kind` is "signals" (boolean arrays named like `Signals`' fields) or "weights" (one float
    array). `Strategy.decide` wraps the same arrays into DataFrames; sweeps skip that wrapping.
    """

    kind: str
    arrays: dict[str, np.ndarray]

    @property
    def allows_short(self) -> bool:
        """Return whether short positions can occur."""
        if self.kind == "signals":
            return "short_entries" in self.arrays or "short_exits" in self.arrays
        return bool((self.arrays["weights"] < 0).any())

    @classmethod
    def of(cls, decision: Decision | DecisionArrays) -> DecisionArrays:
        """Return `decision` as arrays."""
        if isinstance(decision, DecisionArrays):
            return decision
        if isinstance(decision, Signals):
            return cls("signals", {n: f.to_numpy() for n, f in decision.frames().items()})
        return cls("weights", {"weights": decision.weights.to_numpy()})


WarmupSpec = int | str | Callable[["Strategy"], int]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Strategy:
    """Base class of every strategy.

    Subclasses declare `Param`s as class attributes, a `warmup` (an int, the name of a parameter,
    or a callable taking the instance) and implement `signals`. Instances are immutable: change a
    parameter with `with_params`, which validates and returns a new instance.
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    warmup: ClassVar[WarmupSpec] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Param):
                    declared[attr] = value
        cls.params = declared
        if not cls.__dict__.get("name"):
            cls.name = _snake(cls.__name__)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise UnknownNameError(f"parameter of {self.name}", unknown[0], list(self.params))
        resolved = {n: p.validate(values.get(n, p.default)) for n, p in self.params.items()}
        object.__setattr__(self, "_values", resolved)
        for attr, value in resolved.items():
            object.__setattr__(self, attr, value)
        self.validate()
        self.warmup_bars()

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use with_params({attr}=...)")

    def validate(self) -> None:
        """Check relations between parameters; override and raise `ParameterError` (default: none)."""

    @property
    def values(self) -> dict[str, ParamValue]:
        """Return the parameter values of this instance."""
        values: dict[str, ParamValue] = self.__dict__["_values"]
        return dict(values)

    def with_params(self, **values: Any) -> Strategy:
        """Return a new instance with some parameters changed (validated)."""
        return type(self)(**{**self.values, **values})

    def warmup_bars(self) -> int:
        """Return the number of bars needed before the first valid signal."""
        spec = type(self).warmup
        bars: object
        if callable(spec):
            bars = spec(self)
        elif isinstance(spec, str):
            if spec not in self.params:
                raise StrategyError(f"{self.name}: warmup names unknown parameter {spec!r}")
            bars = self.values[spec]
        else:
            bars = spec
        if not isinstance(bars, int | np.integer) or isinstance(bars, bool) or bars < 0:
            raise StrategyError(f"{self.name}: warmup must be a non-negative int, got {bars!r}")
        return int(bars)

    def signals(self, data: Bars) -> Decision:
        """Return the decisions for every bar of `data`, computed causally and vectorised."""
        raise NotImplementedError

    def indicators(self, data: Bars) -> Mapping[str, Indicator]:
        """Return what to draw with the bars: named indicators, in legend order (default: none).

        Override it to show the series `signals()` decides on (moving averages, bands, oscillators
        and their levels) on the research and live charts. Compute them with the same memoised
        functions of `framework.indicators` that `signals()` calls, so that what is drawn is what
        was decided on: same causality (the value at bar t uses bars up to t only), same alignment
        with `data.close`. Names are the legend's labels and the API's keys.

        >>> def indicators(self, data):                                  # doctest: +SKIP
        ...     return {"fast_sma": Indicator(sma(data.close, self.fast)),
        ...             "rsi": Indicator(rsi(data.close, 14), overlay=False)}
        """
        return {}

    def checked_indicators(self, data: Bars) -> dict[str, Indicator]:
        """Call `indicators` and return them checked: float64 frames aligned with the bars.

        This is what the charts and the API call. Raises `StrategyError` when `indicators` raises
        or returns something malformed (a name that is not a string, a value that is not an
        `Indicator`, a frame with other rows or columns than the bars).
        """
        try:
            raw = self.indicators(data)
        except Exception as exc:
            raise StrategyError(f"{self.name}.indicators() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise StrategyError(f"{self.name}.indicators() must return a mapping, got {type(raw).__name__}")
        checked: dict[str, Indicator] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not key:
                raise StrategyError(f"{self.name}: indicator names must be non-empty strings, got {key!r}")
            if not isinstance(value, Indicator):
                raise StrategyError(f"{self.name}: indicator {key!r} must be an Indicator, got {type(value).__name__}")
            frame = _aligned(value.frame, data, f"indicator {key!r}", self.name)
            if not all(dtype == np.float64 for dtype in frame.dtypes):
                try:
                    frame = frame.astype("float64")
                except (TypeError, ValueError) as exc:
                    raise StrategyError(f"{self.name}: indicator {key!r} is not numeric: {exc}") from exc
            if frame is not value.frame:
                value = Indicator(frame, bool(value.overlay))
            checked[key] = value
        return checked

    def decide(self, data: Bars) -> Decision:
        """Call `signals` and return its result checked, aligned and masked before warm-up.

        This is what both the backtest and the live engine call. Raises `StrategyError` when the
        strategy raises or returns something malformed.
        """
        checked = self.decide_arrays(data)
        index, columns = data.index, data.close.columns
        frames = {n: pd.DataFrame(a, index=index, columns=columns, copy=False) for n, a in checked.arrays.items()}
        return Signals(**frames) if checked.kind == "signals" else TargetWeights(frames["weights"])

    def decide_arrays(self, data: Bars) -> DecisionArrays:
        """Like `decide`, returning the checked decision as arrays (the fast path of sweeps)."""
        try:
            raw = self.signals(data)
        except Exception as exc:
            raise StrategyError(f"{self.name}.signals() raised {type(exc).__name__}: {exc}") from exc
        return _conform(raw, data, self.warmup_bars(), self.name)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Return the class's name, doc and parameter declarations as plain data."""
        doc = (cls.__doc__ or "").strip()
        return {
            "name": cls.name,
            "class": cls.__qualname__,
            "summary": doc.splitlines()[0] if doc else "",
            "doc": doc,
            "params": [p.describe() for p in cls.params.values()],
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and isinstance(other, Strategy) and self.values == other.values

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.values.items()))))


def _conform(raw: Any, data: Bars, warmup: int, name: str) -> DecisionArrays:
    if isinstance(raw, Signals):
        return DecisionArrays("signals", {n: _bool_array(f, data, n, name, warmup) for n, f in raw.frames().items()})
    if isinstance(raw, TargetWeights):
        weights = _aligned(raw.weights, data, "weights", name).to_numpy(dtype="float64", copy=True)
        weights[:warmup] = np.nan
        if np.isinf(weights).any():
            raise StrategyError(f"{name}: target weights must be finite")
        return DecisionArrays("weights", {"weights": weights})
    raise StrategyError(f"{name}.signals() must return Signals or TargetWeights, got {type(raw).__name__}")


def _aligned(frame: Any, data: Bars, field: str, name: str) -> pd.DataFrame:
    if isinstance(frame, pd.Series) and len(data.symbols) == 1:
        frame = frame.to_frame(data.symbols[0])
    if not isinstance(frame, pd.DataFrame):
        raise StrategyError(f"{name}: {field} must be a DataFrame, got {type(frame).__name__}")
    same_index = frame.index is data.index or frame.index.equals(data.index)
    same_columns = (
        frame.columns is data.close.columns
        or frame.columns.equals(data.close.columns)
        or [str(c) for c in frame.columns] == data.symbols
    )
    if not (same_index and same_columns):
        raise StrategyError(f"{name}: {field} is not aligned with the bars (same index and columns required)")
    return frame


def _bool_array(frame: Any, data: Bars, field: str, name: str, warmup: int) -> np.ndarray:
    frame = _aligned(frame, data, field, name)
    values = frame.to_numpy()
    if values.dtype != np.bool_:
        numeric = pd.DataFrame(values).astype("float64").to_numpy()
        values = np.where(np.isnan(numeric), False, numeric != 0)
    else:
        values = values.copy()
    values[:warmup] = False
    return values


def resolve_params(strategy_cls: type[Strategy], values: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Return `values` validated against `strategy_cls`'s declarations (unknown names refused)."""
    unknown = sorted(set(values) - set(strategy_cls.params))
    if unknown:
        raise UnknownNameError(f"parameter of {strategy_cls.name}", unknown[0], list(strategy_cls.params))
    return {n: strategy_cls.params[n].validate(v) for n, v in values.items()}
