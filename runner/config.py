"""The run configuration of `rata run`: mode, feed, broker, risk limits and strategy instances.

It lives in the deployment TOML file next to the settings, in its own tables (which the settings
loader skips), and is validated by pydantic with unknown keys refused::

    [runner]
    mode = "dev"                 # replay | dev | paper | live (the --mode option wins)
    cash = 1_000_000
    fees = 0.001
    slippage = 0.0005

    [feed]
    kind = "synthetic"           # synthetic | replay | ccxt
    instruments = 500
    rate = 5000

    [broker]
    kind = "paper"               # paper | ccxt

    [risk]
    max_order_notional = 250000

    [[strategies]]
    id = "sma-fast"
    strategy = "sma_cross"
    params = { fast = 10, slow = 30 }
    symbols = 20                 # a list of symbols, or the first N of the feed's instruments
    timeframe = "1s"
    capital = 100000
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework.errors import ParameterError
from framework.execution import FillTiming
from framework.orders.model import Mode

__all__ = ["BrokerConfig", "FeedConfig", "RunConfig", "RunnerSection", "StrategyConfig", "load_run_config"]

RunMode = Literal["replay", "dev", "paper", "live"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerSection(_Strict):
    """How the runner trades: mode, account, execution model of the paper venue."""

    mode: RunMode = "dev"
    cash: float = Field(1_000_000.0, gt=0)
    currency: str = "USD"
    fees: float = Field(0.001, ge=0, le=0.5)
    slippage: float = Field(0.0005, ge=0, le=0.5)
    fill: FillTiming = "next_open"
    paper_dir: Path | None = Field(None, description="the paper venue's store (default: data_dir/paper)")
    paper_account: str = "main"
    cancel_on_shutdown: bool = False
    decision_timeout_s: float = Field(5.0, gt=0)
    close_grace_s: float = Field(2.0, ge=0)
    bar_close_delay_s: float = Field(
        0.25, ge=0, description="close a quiet instrument's bar this long after its period"
    )
    snapshot_every_s: float = Field(60.0, gt=0)


class FeedConfig(_Strict):
    """Where market data comes from."""

    kind: Literal["synthetic", "replay", "ccxt"] = "synthetic"
    instruments: int = Field(500, ge=1)
    rate: float = Field(5000.0, ge=0)
    seed: int = 0
    venue: str = "SIM"
    dataset: str | None = None
    files: list[Path] = Field(default_factory=list)
    symbols: list[str] = Field(default_factory=list)
    timeframe: str = "1m"
    start: str | None = None
    end: str | None = None
    speed: float = Field(0.0, ge=0, description="replay: 1 = real time, 10 = ten times, 0 = as fast as possible")
    exchange: str | None = None
    ccxt_config: dict[str, Any] = Field(default_factory=dict)


class BrokerConfig(_Strict):
    """Which venue takes the orders."""

    kind: Literal["paper", "ccxt"] = "paper"
    exchange: str | None = None
    sandbox: bool = True
    ccxt_config: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(_Strict):
    """One strategy instance to create at start (if it does not exist yet)."""

    id: str
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] | int = 10
    timeframe: str = "1m"
    capital: float = Field(100_000.0, gt=0)
    state: Literal["running", "paused", "stopped"] = "running"


class RunConfig(_Strict):
    """The whole run configuration."""

    runner: RunnerSection = Field(default_factory=RunnerSection)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    risk: dict[str, Any] = Field(default_factory=dict)
    strategies: list[StrategyConfig] = Field(default_factory=list)

    @property
    def mode(self) -> Mode:
        """Return the runner mode."""
        return Mode(self.runner.mode)

    def with_mode(self, mode: str | None) -> RunConfig:
        """Return the config with the mode replaced (and the feed/broker it implies checked)."""
        if mode is None:
            return self.check()
        runner = self.runner.model_copy(update={"mode": mode})
        return self.model_copy(update={"runner": runner}).check()

    def check(self) -> RunConfig:
        """Raise `ParameterError` when the mode, feed and broker do not go together."""
        mode, feed, broker = self.runner.mode, self.feed.kind, self.broker.kind
        wanted = {
            "replay": ("replay", "paper"),
            "dev": ("synthetic", "paper"),
            "paper": ("ccxt", "paper"),
            "live": ("ccxt", "ccxt"),
        }[mode]
        if (feed, broker) != wanted:
            raise ParameterError(
                f"mode {mode} runs feed {wanted[0]!r} with broker {wanted[1]!r}; the config has "
                f"feed {feed!r} and broker {broker!r}"
            )
        ids = [s.id for s in self.strategies]
        if len(set(ids)) != len(ids):
            raise ParameterError("two strategy instances share an id in the config")
        return self


def load_run_config(path: str | Path | None, **sections: Any) -> RunConfig:
    """Read the run tables of a TOML file (all optional) and validate them; `sections` override."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise ParameterError(f"no such config file: {file}")
        with file.open("rb") as handle:
            raw = tomllib.load(handle)
        data = {k: raw[k] for k in ("runner", "feed", "broker", "risk", "strategies") if k in raw}
    data.update(sections)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ParameterError(f"run config: {where}: {first['msg']}") from exc
