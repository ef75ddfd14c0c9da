"""Shared plumbing of the per-venue profiles used by the ccxt feed and the ccxt broker.

Venue quirks live in one module per ccxt exchange id (`framework/feeds/venues/binance.py`,
`framework/brokers/venues/binance.py`), each exposing a `VENUE` profile; these helpers find that
profile and merge ccxt settings layers.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["find_profile", "merged_config"]

P = TypeVar("P")


def find_profile(package: str, exchange_id: str, default: P) -> P:
    """Return `package.<exchange_id>.VENUE` if that module exists and holds a profile like `default`."""
    if not exchange_id.isidentifier():
        return default
    name = f"{package}.{exchange_id}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return default
    venue = getattr(module, "VENUE", None)
    return venue if isinstance(venue, type(default)) else default


def merged_config(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Return ccxt settings layers deep-merged (nested `options`, `urls` merged, not replaced), later ones winning."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged_config(out[key], value)
            else:
                out[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value
    return out
