"""Money arithmetic for stock valuation: exact decimals with 6 places, no floats.

Stock value changes by exact amounts (quantity x unit cost) on receipts and by a
proportional share of the current value on every other movement, so a position's
average cost is always `stock_value / on_hand` and reversing a receipt restores it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MONEY_PLACES = Decimal("0.000001")
ZERO = Decimal("0.000000")


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)


def average_cost(value: Decimal, quantity: int) -> Decimal:
    return money(value / quantity) if quantity > 0 else ZERO


def share(value: Decimal, part: int, whole: int) -> Decimal:
    """The value of `part` of `whole` units worth `value`; all of it when part == whole."""
    if part >= whole:
        return value
    return money(value * part / whole)
