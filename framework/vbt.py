"""The one place rata imports vectorbt and selects its Rust engine.

With Numba alone the first simulation in a fresh process JIT-compiles for tens of seconds; the Rust
kernels of `vectorbt-rust` are compiled ahead of time. `vectorbt` is imported here once, with the
engine forced to Rust so that a missing or mismatched `vectorbt-rust` fails loudly instead of
silently falling back to Numba.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import vectorbt as _vbt

__all__ = ["ENGINE", "vbt"]

ENGINE = "rust"
vbt: Any = _vbt
vbt.settings["engine"] = ENGINE
