"""Money on the wire: `UnitCost` in commands (validated exactly) and `Money` in events."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# Money per base unit (`unit_cost`): ONE definition for the model and the published
# JSON Schema. The string form is validated by exactly UNIT_COST_PATTERN, which encodes
# the bound 0..MAX_UNIT_COST and at most UNIT_COST_DECIMALS places (leading zeros are
# allowed, as the v1 schema always allowed them; [0-9], not \d, which would also match
# other scripts' digits in Python). A JSON number arrives as a binary double (pydantic
# parses JSON numbers as doubles, like most parsers): its shortest decimal form must keep
# the same bounds and places and hold at most JSON_NUMBER_DIGITS significant digits, as a
# double holds no more exactly (123456789012.123456 arrives as 123456789012.12346). JSON
# Schema cannot express the last two rules, so the schema's description states them.
MAX_UNIT_COST = 1_000_000_000_000
UNIT_COST_DECIMALS = 6
JSON_NUMBER_DIGITS = 15
UNIT_COST_PATTERN = r"^0*(?:[0-9]{1,12}(?:\.[0-9]{1,6})?|1000000000000(?:\.0{1,6})?)$"
_UNIT_COST_TEXT = re.compile(UNIT_COST_PATTERN)
_UNIT_COST_DESCRIPTION = (
    "Money per base unit, from 0 to 10^12 with at most 6 decimal places. A decimal "
    "string is exact: digits, optionally a point and 1 to 6 digits (no sign, exponent "
    "or spaces). A JSON number is read as an IEEE-754 double, so what JSON Schema cannot "
    "express here is also checked: the number must have at most 6 decimal places and at "
    "most 15 significant digits (a double holds no more exactly; send a longer amount as "
    "a string), and digits a double does not hold are lost before any check. multipleOf "
    "is not published because validators compute it in floating point."
)


def _unit_cost_error(kind: str, message: str, **context: object) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


def _digits_and_exponent(value: Decimal) -> tuple[tuple[int, ...], int]:
    """The digits and exponent of `value` without trailing zeros (exact, no context)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not any(digits):
        return (0,), 0
    while digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return digits, exponent


def _unit_cost(value: object) -> Decimal:
    if isinstance(value, str):
        if _UNIT_COST_TEXT.fullmatch(value) is None:
            raise _unit_cost_error(
                "string_pattern_mismatch",
                "String should match pattern '{pattern}': a decimal from 0 to {le} with "
                "at most {decimal_places} decimal places, without sign, exponent or spaces",
                pattern=UNIT_COST_PATTERN,
                le=MAX_UNIT_COST,
                decimal_places=UNIT_COST_DECIMALS,
            )
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _unit_cost_error("decimal_type", "Input should be a JSON number or a decimal string")
    if isinstance(value, int):
        _within_bounds(value)  # before converting: a huge integer is refused cheaply
        return Decimal(value)
    if not (math.isfinite(value) if isinstance(value, float) else value.is_finite()):
        raise _unit_cost_error("finite_number", "Input should be a finite number")
    # A double's shortest decimal form is what its JSON text meant, if that had at most
    # JSON_NUMBER_DIGITS significant digits.
    exact = Decimal(repr(value)) if isinstance(value, float) else value
    _within_bounds(exact)
    digits, exponent = _digits_and_exponent(exact)
    if exponent < -UNIT_COST_DECIMALS:
        raise _unit_cost_error(
            "decimal_max_places",
            "Decimal input should have no more than {decimal_places} decimal places",
            decimal_places=UNIT_COST_DECIMALS,
        )
    if isinstance(value, float) and len(digits) > JSON_NUMBER_DIGITS:
        raise _unit_cost_error(
            "decimal_max_digits",
            "A JSON number holds at most {max_digits} significant digits exactly: send "
            "this amount as a decimal string",
            max_digits=JSON_NUMBER_DIGITS,
        )
    return exact.copy_abs()  # never a negative zero (-0.0 is a valid JSON number)


def _within_bounds(value: int | Decimal) -> None:
    if value < 0:
        raise _unit_cost_error(
            "greater_than_equal", "Input should be greater than or equal to {ge}", ge=0
        )
    if value > MAX_UNIT_COST:
        raise _unit_cost_error(
            "less_than_equal", "Input should be less than or equal to {le}", le=MAX_UNIT_COST
        )


UnitCost = Annotated[
    Decimal,
    PlainValidator(_unit_cost),
    WithJsonSchema(
        {
            "description": _UNIT_COST_DESCRIPTION,
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_UNIT_COST},
                {"type": "string", "pattern": UNIT_COST_PATTERN},
            ],
        }
    ),
]


# Money in events: a decimal string (exact, unlike a JSON number), e.g. "12.500000".
Money = Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$"})]
