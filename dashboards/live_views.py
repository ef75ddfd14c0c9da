"""What the live dashboard shows, as plain data: tables of positions, orders and fills, and HTML summaries.

Pure functions of the API's JSON (no Panel, no I/O), so the page's content is easy to test and
the session code stays about wiring. Money arrives as decimal strings and is shown rounded for a
person; open orders keep the API's exact decimal strings (quantity, limit, filled).
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "OPEN_STATUSES",
    "TickRate",
    "account_html",
    "feed_html",
    "fills_frame",
    "limits_html",
    "money",
    "orders_frame",
    "parse_metrics",
    "positions_frame",
    "state_html",
]

OPEN_STATUSES = frozenset({"new", "submitted", "accepted", "partially_filled", "cancel_pending"})
_STATE_COLORS = {"active": "#2e7d32", "reducing": "#ef6c00", "halted": "#c62828"}


def money(value: Any, digits: int = 2) -> str:
    """Return a number (or decimal string) with thousands separators; '' for None."""
    if value is None or value == "":
        return ""
    number = float(value)
    if not math.isfinite(number):
        return str(value)
    return f"{number:,.{digits}f}"


def _time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%H:%M:%S")


def positions_frame(positions: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return open positions (flat ones left out) with their marks and PnL, biggest exposure first."""
    rows = []
    for p in positions:
        quantity = float(p["quantity"])
        if quantity == 0:
            continue
        mark = float(p["mark"]) if p.get("mark") is not None else math.nan
        rows.append(
            {
                "strategy": p["strategy"],
                "symbol": p["symbol"],
                "side": p["side"],
                "quantity": quantity,
                "avg price": float(p["avg_price"]) if p.get("avg_price") is not None else math.nan,
                "mark": mark,
                "unrealised": float(p["unrealised"]) if p.get("unrealised") is not None else math.nan,
                "realised": float(p["realised"]),
                "fees": float(p["fees"]),
                "exposure": abs(quantity * mark) if math.isfinite(mark) else math.nan,
            }
        )
    columns = ["strategy", "symbol", "side", "quantity", "avg price", "mark", "unrealised", "realised", "fees"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values("exposure", ascending=False, na_position="last")
    return frame[columns].reset_index(drop=True)


def orders_frame(orders: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return open orders, newest first, with a `cancel` column for the table's buttons."""
    columns = ["client_id", "time", "strategy", "symbol", "side", "type", "quantity", "limit", "filled", "status"]
    rows = [
        {
            "client_id": o["client_id"],
            "time": _time(o.get("created_at")),
            "strategy": o["strategy"],
            "symbol": o["symbol"],
            "side": o["side"],
            "type": o["type"],
            "quantity": o["quantity"],
            "limit": o.get("limit_price") or "",
            "filled": o["filled"],
            "status": o["status"],
            "_created": o.get("created_at") or "",
        }
        for o in orders
        if o["status"] in OPEN_STATUSES
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values("_created", ascending=False)
    return frame[columns].reset_index(drop=True)


def fills_frame(fills: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return fills in the order given (newest first) for the fills table."""
    columns = ["time", "strategy", "symbol", "side", "quantity", "price", "fee", "client_id"]
    rows = [
        {
            "time": _time(f["time"]),
            "strategy": f["strategy"],
            "symbol": f["symbol"],
            "side": f["side"],
            "quantity": float(f["quantity"]),
            "price": float(f["price"]),
            "fee": float(f["fee"]),
            "client_id": f["client_id"],
        }
        for f in fills
    ]
    return pd.DataFrame(rows, columns=columns)


def _table(rows: Iterable[tuple[str, str]], css: str, **data: str) -> str:
    attrs = "".join(f' data-{k}="{html.escape(v)}"' for k, v in data.items())
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="{css}"{attrs} style="width:100%;font-size:0.9em">{body}</table>'


def state_html(state: str, reason: str) -> str:
    """Return the trading state as a large coloured badge (data-state carries it for tests)."""
    shown = state.upper() if state else "UNKNOWN"
    color = _STATE_COLORS.get(state, "#616161")
    why = f'<div style="font-size:0.85em;color:#555;margin-top:4px">{html.escape(reason)}</div>' if reason else ""
    return (
        f'<div class="rata-trading-state" data-state="{html.escape(state)}" style="background:{color};color:white;'
        f'font-weight:700;font-size:1.6em;text-align:center;padding:8px;border-radius:6px">{shown}</div>{why}'
    )


def account_html(account: Mapping[str, Any]) -> str:
    """Return the account summary: equity, cash, PnL, fees and exposure."""
    if not account:
        return '<table class="rata-account"></table>'
    currency = account.get("currency", "")
    rows = [
        ("equity", f"{money(account['equity'])} {currency}"),
        ("cash", money(account["cash"])),
        ("realised PnL", money(account["realised"])),
        ("unrealised PnL", money(account["unrealised"])),
        ("fees", money(account["fees"])),
        ("net / gross exposure", f"{money(account['net_exposure'], 0)} / {money(account['gross_exposure'], 0)}"),
    ]
    return _table(rows, "rata-account", equity=str(account["equity"]))


def limits_html(limits: Mapping[str, Any]) -> str:
    """Return the account's risk limits ('none' where a limit is not set)."""
    rows = []
    for name, value in limits.items():
        if isinstance(value, dict):
            shown = f"{value.get('orders')} orders / {value.get('per_seconds')} s"
        else:
            shown = "none" if value is None else str(value)
        rows.append((name.replace("_", " "), shown))
    if not rows:
        rows = [("limits", "none set")]
    return _table(rows, "rata-limits")


def parse_metrics(text: str) -> dict[str, float]:
    """Return the samples of a Prometheus exposition that describe the feed, keyed `name{label=value}`."""
    wanted = ("rata_feed_", "rata_ticks_", "rata_bad_messages", "rata_websocket_clients")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(wanted):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return samples


def _sum(samples: Mapping[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


def feed_html(
    ready: Mapping[str, Any], samples: Mapping[str, float], tick_rate: float | None, stream: Mapping[str, Any]
) -> str:
    """Return feed health: connection, staleness, tick rate, bad messages, runner readiness, this page's stream."""
    connected = _sum(samples, "rata_feed_connected")
    staleness = [v for k, v in samples.items() if k.startswith("rata_feed_staleness_seconds")]
    healthy = bool(connected) and bool(ready.get("ready")) and (not staleness or max(staleness) < 5.0)
    rows = [
        ("feed", "connected" if connected else "DISCONNECTED"),
        ("last message", f"{max(staleness):.1f} s ago" if staleness else "never"),
        ("ticks received", f"{_sum(samples, 'rata_ticks_received_total'):,.0f}"),
        ("tick rate", f"{tick_rate:,.0f} /s" if tick_rate is not None else "..."),
        ("ticks stored", f"{_sum(samples, 'rata_ticks_written_total'):,.0f}"),
        ("bad messages", f"{_sum(samples, 'rata_bad_messages_total'):,.0f}"),
        ("reconnects", f"{_sum(samples, 'rata_feed_reconnects_total'):,.0f}"),
        ("runner", f"{ready.get('runner', '?')} ({ready.get('mode', '?')})"),
        ("database", "up" if ready.get("database") else "DOWN"),
        ("reconciled", "yes" if ready.get("reconciled") else "NO"),
        ("page stream", f"{stream.get('status', '?')}, {stream.get('received', 0):,} events"),
    ]
    if ready.get("reason"):
        rows.append(("not ready", str(ready["reason"])))
    return _table(rows, "rata-feed", healthy="yes" if healthy else "no")


class TickRate:
    """The feed's tick rate, from successive readings of `rata_ticks_received_total`."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None
        self.rate: float | None = None

    def update(self, samples: Mapping[str, float]) -> float | None:
        """Take a reading of the metrics; return ticks per second since the previous one (None at first)."""
        total = _sum(samples, "rata_ticks_received_total")
        now = time.monotonic()
        if self._last is not None and now > self._last[0]:
            self.rate = max(0.0, (total - self._last[1]) / (now - self._last[0]))
        self._last = (now, total)
        return self.rate
