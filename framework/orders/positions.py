"""Positions and PnL per strategy and instrument, derived purely from fills with exact `Decimal`s.

A `Position` is what a sequence of fills of one strategy in one symbol adds up to:

- `quantity`: signed (+ long, - short), the sum of the fills' signed quantities.
- `avg_price`: the average entry price. A fill that opens or increases the position weights it
  by quantity; one that reduces the position leaves it unchanged; going flat clears it; a fill
  that goes through zero (a reversal, in one fill) closes the old position and opens the new one
  at the fill's price.
- `cost_basis`: the signed cost of the open quantity (+ for long, - for short). Reducing moves
  `avg_price * closed quantity` of it into realised PnL; closing moves all that is left, so
  rounding in the average price never leaks: it is settled at the close.
- `realised`: PnL of the closed quantity, **net of fees** (every fee is charged when paid, so a
  freshly opened position shows its entry fee as realised loss). `fees` is their running total.
- `unrealised(mark) = quantity * mark - cost_basis`.

So, exactly, for any mark: `realised + unrealised(mark) == sum over fills of (-signed quantity *
price - fee) + quantity * mark`, the cash the fills moved plus what the position is worth. The
property test holds the code to that identity.

`PositionBook` keeps the positions of many strategies and symbols, applies each fill once (by
venue and trade id, the fills table's key), and sums PnL, exposure and equity per strategy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from framework.errors import IntegrityError, RejectedError
from framework.orders.model import Fill
from framework.orders.state import MismatchedEvent, divide, exact_arithmetic

__all__ = ["Position", "PositionBook", "Totals"]

ZERO: Final = Decimal(0)
_NONE: Final[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Position:
    """The net position of one strategy in one symbol; see the module docstring for the rules."""

    strategy: str
    symbol: str
    quantity: Decimal = ZERO
    avg_price: Decimal | None = None
    cost_basis: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    fill_count: int = 0
    updated_ns: int = 0

    @property
    def is_flat(self) -> bool:
        """Return whether no quantity is open."""
        return self.quantity == 0

    @property
    def side(self) -> Literal["long", "short", "flat"]:
        """Return "long", "short" or "flat"."""
        if self.quantity > 0:
            return "long"
        return "short" if self.quantity < 0 else "flat"

    @property
    def cash_flow(self) -> Decimal:
        """Return the cash the fills moved: sum of (-signed quantity * price - fee)."""
        with exact_arithmetic():
            return self.realised - self.cost_basis

    def market_value(self, mark: Decimal) -> Decimal:
        """Return the signed value of the open quantity at `mark` (its contribution to equity)."""
        with exact_arithmetic():
            return self.quantity * mark

    def unrealised(self, mark: Decimal) -> Decimal:
        """Return the PnL the open quantity would realise if closed at `mark`, before exit fees."""
        if self.is_flat:
            return ZERO
        with exact_arithmetic():
            return self.quantity * mark - self.cost_basis

    def pnl(self, mark: Decimal) -> Decimal:
        """Return realised plus unrealised PnL at `mark`, net of the fees paid so far."""
        with exact_arithmetic():
            return self.realised + self.unrealised(mark)

    def apply(self, fill: Fill) -> Position:
        """Return the position after `fill` (which must be this strategy's and symbol's).

        This does not dedupe: a `PositionBook` does, by trade id.
        """
        if fill.symbol != self.symbol or fill.strategy != self.strategy:
            raise MismatchedEvent(
                f"fill {fill.fill_id} of {fill.strategy!r}/{fill.symbol!r} applied to the position of "
                f"{self.strategy!r}/{self.symbol!r}"
            )
        qty, traded, price = self.quantity, fill.signed_quantity, fill.price
        avg: Decimal | None
        with exact_arithmetic():
            after = qty + traded
            realised = self.realised - fill.fee
            if qty == 0 or (qty > 0) == (traded > 0):  # open or increase
                cost = self.cost_basis + traded * price
                avg = price if qty == 0 else divide(cost, after)
            elif after == 0 or (after > 0) != (qty > 0):  # close, or close and reverse
                realised += qty * price - self.cost_basis
                cost = after * price
                avg = price if after != 0 else None
            else:  # reduce
                if self.avg_price is None:
                    raise IntegrityError(f"position {self.strategy}/{self.symbol} is open without an average price")
                released = self.avg_price * -traded
                realised += -traded * price - released
                cost = self.cost_basis - released
                avg = self.avg_price
            fees = self.fees + fill.fee
        return Position(
            self.strategy,
            self.symbol,
            after,
            avg,
            cost,
            realised,
            fees,
            self.fill_count + 1,
            max(self.updated_ns, fill.time_ns),
        )


@dataclass(frozen=True, slots=True)
class Totals:
    """PnL and exposure summed over positions (of one strategy, or of the whole book)."""

    realised: Decimal = ZERO
    unrealised: Decimal = ZERO
    fees: Decimal = ZERO
    cash_flow: Decimal = ZERO
    net_exposure: Decimal = ZERO
    gross_exposure: Decimal = ZERO

    @property
    def pnl(self) -> Decimal:
        """Return realised plus unrealised PnL (net of fees)."""
        with exact_arithmetic():
            return self.realised + self.unrealised


class PositionBook:
    """Positions per (strategy, symbol), built from fills, each applied once.

    Fills dedupe on (venue, fill id), the key of the fills table, so replaying stored fills and
    then receiving the same fills from a venue after a restart changes nothing. Venue adapters must
    make fill ids unique per venue (some venues number trades per symbol).

    >>> from framework.orders import Fill, OrderSide, PositionBook
    >>> book = PositionBook()
    >>> fill = Fill("t1", "c1", "SIM", "AAA", OrderSide.BUY, Decimal(2), Decimal(10), strategy="s")
    >>> book.apply(fill).quantity, book.apply(fill)
    (Decimal('2'), None)
    """

    def __init__(self, fills: Iterable[Fill] = ()) -> None:
        self._positions: dict[str, dict[str, Position]] = {}
        self._open: dict[str, set[str]] = {}  # strategy -> symbols with a quantity (kept by `apply`)
        self._seen: set[tuple[str, str]] = set()
        for fill in fills:
            self.apply(fill)

    def __len__(self) -> int:
        return sum(len(symbols) for symbols in self._positions.values())

    def seen(self, fill: Fill) -> bool:
        """Return whether `fill` (by venue and fill id) was applied already."""
        return (fill.venue, fill.fill_id) in self._seen

    def apply(self, fill: Fill) -> Position | None:
        """Apply `fill` to its strategy's position in its symbol; return the new position.

        Return None, changing nothing, for a fill applied before. Raise `RejectedError` for a
        fill without a strategy: it belongs to nobody's position.
        """
        if not fill.strategy:
            raise RejectedError(f"fill {fill.fill_id} of {fill.symbol} has no strategy")
        key = (fill.venue, fill.fill_id)
        if key in self._seen:
            return None
        symbols = self._positions.setdefault(fill.strategy, {})
        position = symbols.get(fill.symbol) or Position(fill.strategy, fill.symbol)
        position = position.apply(fill)
        symbols[fill.symbol] = position
        if position.quantity:
            self._open.setdefault(fill.strategy, set()).add(fill.symbol)
        else:
            self._open.get(fill.strategy, set()).discard(fill.symbol)
        self._seen.add(key)
        return position

    def position(self, strategy: str, symbol: str) -> Position:
        """Return the position of `strategy` in `symbol` (flat if it never traded it)."""
        return self._positions.get(strategy, {}).get(symbol) or Position(strategy, symbol)

    def held(self, strategy: str) -> Iterable[Position]:
        """Return the positions of `strategy`, flat ones too, in no order (a view: for summing, not keeping)."""
        return self._positions.get(strategy, {}).values()

    def open_symbols(self, strategy: str) -> AbstractSet[str]:
        """Return the symbols where `strategy` holds a quantity, long or short (a view: read, do not keep)."""
        return self._open.get(strategy, _NONE)

    def positions(self, strategy: str | None = None, *, open_only: bool = False) -> list[Position]:
        """Return the positions of `strategy` (default: all), sorted by strategy and symbol."""
        names = [strategy] if strategy is not None else sorted(self._positions)
        return [
            position
            for name in names
            for _, position in sorted(self._positions.get(name, {}).items())
            if not (open_only and position.is_flat)
        ]

    def strategies(self) -> list[str]:
        """Return the strategies with at least one fill, sorted."""
        return sorted(self._positions)

    def net_positions(self) -> dict[str, Decimal]:
        """Return the net quantity per symbol over all strategies (flat symbols left out).

        This is what a venue reports for the account, so reconciliation compares against it.
        """
        net: dict[str, Decimal] = {}
        with exact_arithmetic():
            for symbols in self._positions.values():
                for symbol, position in symbols.items():
                    net[symbol] = net.get(symbol, ZERO) + position.quantity
        return {symbol: qty for symbol, qty in sorted(net.items()) if qty != 0}

    def totals(self, marks: Mapping[str, Decimal], strategy: str | None = None) -> Totals:
        """Return PnL and exposure of `strategy` (default: the whole book) at the `marks` prices.

        `marks` maps symbol to mark price; every open position needs one (`RejectedError`
        otherwise: a missing price must not read as zero PnL).
        """
        realised = unrealised = fees = cash_flow = net = gross = ZERO
        with exact_arithmetic():  # one block for the book; the positions' own blocks nest in it for free
            for position in self.positions(strategy):
                realised += position.realised
                fees += position.fees
                cash_flow += position.cash_flow
                if not position.is_flat:
                    mark = _mark(marks, position)
                    value = position.market_value(mark)
                    unrealised += position.unrealised(mark)
                    net += value
                    gross += abs(value)
        return Totals(realised, unrealised, fees, cash_flow, net, gross)

    def totals_by_strategy(self, marks: Mapping[str, Decimal]) -> dict[str, Totals]:
        """Return `totals` for every strategy."""
        return {strategy: self.totals(marks, strategy) for strategy in self.strategies()}

    def cash(self, cash: Decimal, strategy: str | None = None) -> Decimal:
        """Return the cash left from `cash` (held before any fill) after the fills' flows."""
        with exact_arithmetic():
            return cash + sum((p.cash_flow for p in self.positions(strategy)), ZERO)

    def equity(self, cash: Decimal, marks: Mapping[str, Decimal], strategy: str | None = None) -> Decimal:
        """Return the equity at `marks` of `strategy` (default: all) that held `cash` before any fill.

        Equity is the cash after the fills plus the market value of the open positions, which
        equals `cash` plus realised and unrealised PnL.
        """
        totals = self.totals(marks, strategy)
        with exact_arithmetic():
            return cash + totals.cash_flow + totals.net_exposure


def _mark(marks: Mapping[str, Decimal], position: Position) -> Decimal:
    mark = marks.get(position.symbol)
    if mark is None:
        raise RejectedError(f"no mark price for {position.symbol} (open position of {position.strategy})")
    return mark
