"""Find strategy classes by name.

Strategies live in their own package (`strategies/` by default), one module each; `framework` never
imports it statically (dependencies point inward), it discovers it by name at run time.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache

from framework.errors import StrategyError, UnknownNameError
from framework.strategy import Strategy

__all__ = ["get_strategy", "strategy_classes"]

DEFAULT_PACKAGE = "strategies"


@cache
def strategy_classes(package: str = DEFAULT_PACKAGE) -> dict[str, type[Strategy]]:
    """Return every `Strategy` subclass defined in `package`'s modules, by strategy name."""
    try:
        root = importlib.import_module(package)
    except ImportError as exc:
        raise StrategyError(f"cannot import strategy package {package!r}: {exc}") from exc
    found: dict[str, type[Strategy]] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__:
                if obj.name in found and found[obj.name] is not obj:
                    raise StrategyError(f"two strategies are named {obj.name!r}")
                found[obj.name] = obj
    return found


def get_strategy(name: str, package: str = DEFAULT_PACKAGE) -> type[Strategy]:
    """Return the strategy class called `name` (its `name` attribute, e.g. `sma_cross`)."""
    classes = strategy_classes(package)
    if name not in classes:
        raise UnknownNameError("strategy", name, sorted(classes))
    return classes[name]
