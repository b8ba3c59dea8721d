"""Money arithmetic for stock valuation: exact decimals with 6 places, no floats.

Stock value changes by exact amounts (quantity x unit cost) on receipts and by a
proportional share of the current value on every other movement, so a position's
average cost is always `stock_value / on_hand` and reversing a receipt restores it.

Limits: a unit cost is at most 10^12 (commands.MAX_UNIT_COST), a quantity of a position
at most 10^15 (handlers.common.MAX_POSITION_QUANTITY), and a position's stock value or a
purchase-order line's received value at most MAX_VALUE (a change that would raise one
above it is rejected with VALUE_LIMIT). Python's default decimal context (28 digits)
cannot even quantize 10^12 units x 10^12 (31 digits with 6 places: InvalidOperation),
so money is computed in MONEY_CONTEXT. Its 64 digits hold every product exactly: the
largest is a stored value (at most 10^27 = 10^15 units at 10^12, even in rows written
before MAX_VALUE existed) times a part (below 10^15), 49 digits. A quotient value x part
/ whole (at most 10^27, so below 10^34 millionths) keeps at least 30 digits past the
millionths; with whole at most 10^15 it is either exactly a tie at the 7th decimal or at
least 5 x 10^-16 of a millionth away from one, so rounding it there and then to 6 places
is one exact rounding.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

MONEY_PLACES = Decimal("0.000001")
ZERO = Decimal("0.000000")
# The most a position's stock value, or a purchase-order line's received value, may
# reach: 10^6 units at the highest unit cost; with 6 places it is 25 digits, well inside
# PostgreSQL's numeric and the default decimal context that other layers sum with.
MAX_VALUE = Decimal(1_000_000_000_000_000_000)
MONEY_CONTEXT = Context(prec=64, rounding=ROUND_HALF_EVEN)


def money_context() -> AbstractContextManager[Context]:
    """A local decimal context in which sums and products of money are exact."""
    return localcontext(MONEY_CONTEXT)


# The functions below name MONEY_CONTEXT in each operation rather than entering it:
# they are on every command's path, and a context switch costs more than the arithmetic.


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN, context=MONEY_CONTEXT)


def value_of(unit_cost: Decimal, quantity: int) -> Decimal:
    """What `quantity` units cost at `unit_cost`, exactly."""
    return money(MONEY_CONTEXT.multiply(unit_cost, quantity))


def average_cost(value: Decimal, quantity: int) -> Decimal:
    if quantity <= 0:
        return ZERO
    return money(MONEY_CONTEXT.divide(value, quantity))


def share(value: Decimal, part: int, whole: int) -> Decimal:
    """The value of `part` of `whole` units worth `value`; all of it when part == whole."""
    if part >= whole:
        return value
    return money(MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(value, part), whole))
