"""Stock commands: the public input contract of `stock.commands.v1`.

Field constraints live here (pydantic); rules that need stored state live in the
handlers (`domain/handlers/`). Every command except the catalog ones names the SKU its
record is keyed by, so one SKU's commands stay in order on one partition.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Quantities are integers in the item's base unit. The upper bound keeps every sum
# of quantities inside PostgreSQL's BIGINT and rejects absurd input early.
MAX_QUANTITY = 1_000_000_000_000

# Text never holds control characters (PostgreSQL refuses NUL, logs and UIs choke on
# the rest); codes also have no surrounding spaces.
_TEXT = r"^[^\x00-\x1f\x7f]*$"
_CODE = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE)]
LocationCode = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE)]
Reference = Annotated[str, Field(min_length=1, max_length=100, pattern=_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_TEXT)]
PositiveQuantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
NonNegativeQuantity = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
Version = Annotated[int, Field(strict=True, ge=0)]
PoLine = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
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


class AdjustmentReason(StrEnum):
    COUNT = "COUNT"
    DAMAGE = "DAMAGE"
    LOSS = "LOSS"
    FOUND = "FOUND"
    RETURN = "RETURN"
    CORRECTION = "CORRECTION"


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    command_id: UUID
    occurred_at: AwareDatetime


class PositionCommand(_Base):
    """A command on one position (sku, location)."""

    sku: Sku
    location: LocationCode
    # Optimistic concurrency: rejected with VERSION_CONFLICT unless the position is at
    # this version (0 = does not exist yet).
    expected_version: Version | None = None


class ConfigureStockItem(PositionCommand):
    """Create or update the position of `sku` at `location` and its thresholds."""

    type: Literal["ConfigureStockItem"] = "ConfigureStockItem"
    min_quantity: NonNegativeQuantity
    # max >= min is a business rule checked by the domain (reason MAX_BELOW_MIN).
    max_quantity: NonNegativeQuantity
    low_stock_threshold: NonNegativeQuantity
    reorder_quantity: NonNegativeQuantity = 0
    bin: Annotated[str, Field(max_length=50, pattern=_TEXT)] | None = None
    preferred_supplier: Reference | None = None


class OrderPOItem(PositionCommand):
    """A purchase-order line was placed: on_order grows by its quantity."""

    type: Literal["OrderPOItem"] = "OrderPOItem"
    po_number: Reference
    po_line: PoLine
    quantity: PositiveQuantity
    unit_cost: UnitCost
    supplier: Reference | None = None
    expected_date: date | None = None


class ReceivePOItem(PositionCommand):
    """Goods arrived for a purchase-order line (or unplanned): on_hand grows."""

    type: Literal["ReceivePOItem"] = "ReceivePOItem"
    po_number: Reference
    po_line: PoLine
    quantity: PositiveQuantity
    unit_cost: UnitCost


class UnreceivePOItem(PositionCommand):
    """Reverse (part of) what was received on a line, at the cost it was received at."""

    type: Literal["UnreceivePOItem"] = "UnreceivePOItem"
    po_number: Reference
    po_line: PoLine
    quantity: PositiveQuantity


class CancelPOItem(PositionCommand):
    """Cancel the open remainder of a line: on_order drops by what was still expected."""

    type: Literal["CancelPOItem"] = "CancelPOItem"
    po_number: Reference
    po_line: PoLine


class ReserveStock(PositionCommand):
    """Promise available stock to an order; with allow_backorder, promise the shortfall too."""

    type: Literal["ReserveStock"] = "ReserveStock"
    reservation_id: Reference
    quantity: PositiveQuantity
    order_ref: Reference
    expires_at: AwareDatetime | None = None
    allow_backorder: bool = False


class ReleaseReservation(PositionCommand):
    """Release a reservation, wholly or `quantity` of it (back orders are released first)."""

    type: Literal["ReleaseReservation"] = "ReleaseReservation"
    reservation_id: Reference
    quantity: PositiveQuantity | None = None


class ExpireReservation(_Base):
    """Sent by the worker itself for a reservation whose expires_at has passed."""

    type: Literal["ExpireReservation"] = "ExpireReservation"
    sku: Sku
    location: LocationCode
    reservation_id: Reference


class PickStock(PositionCommand):
    """Move stock into picked for an order: from the named reservation first, then available."""

    type: Literal["PickStock"] = "PickStock"
    quantity: PositiveQuantity
    order_ref: Reference
    reservation_id: Reference | None = None


class UnpickStock(PositionCommand):
    """A cancelled pick: picked stock of an order goes back to available."""

    type: Literal["UnpickStock"] = "UnpickStock"
    quantity: PositiveQuantity
    order_ref: Reference


class ShipStock(PositionCommand):
    """Ship picked stock of an order: it leaves on_hand and picked."""

    type: Literal["ShipStock"] = "ShipStock"
    quantity: PositiveQuantity
    order_ref: Reference


class AdjustInventory(PositionCommand):
    """Correct on_hand by a signed delta, or set it to a counted quantity."""

    type: Literal["AdjustInventory"] = "AdjustInventory"
    delta: Annotated[int, Field(strict=True, ge=-MAX_QUANTITY, le=MAX_QUANTITY)] | None = None
    counted_quantity: NonNegativeQuantity | None = None
    reason: AdjustmentReason
    # Value of stock found; by default the position's moving-average cost.
    unit_cost: UnitCost | None = None

    @model_validator(mode="after")
    def _exactly_one_of_delta_or_count(self) -> Self:
        if (self.delta is None) == (self.counted_quantity is None):
            raise ValueError("give exactly one of delta or counted_quantity")
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class TransferStock(_Base):
    """Move available stock of one SKU between two locations, both or neither.

    Stock may leave an inactive location but not enter one (LOCATION_INACTIVE); an
    inactive item is not transferred (ITEM_INACTIVE), as that adds stock at the destination.
    """

    type: Literal["TransferStock"] = "TransferStock"
    sku: Sku
    from_location: LocationCode
    to_location: LocationCode
    quantity: PositiveQuantity
    expected_version: Version | None = None  # of the source position
    expected_destination_version: Version | None = None


class ConfigureLocation(_Base):
    """Create or update a location (warehouse, store, bin area)."""

    type: Literal["ConfigureLocation"] = "ConfigureLocation"
    code: LocationCode
    name: Name
    active: bool = True


class ConfigureItem(_Base):
    """Create or update an item (SKU) of the catalogue."""

    type: Literal["ConfigureItem"] = "ConfigureItem"
    sku: Sku
    name: Name
    base_unit: Annotated[str, Field(min_length=1, max_length=20, pattern=_CODE)] = "EA"
    active: bool = True


AnyCommand = (
    ConfigureStockItem
    | OrderPOItem
    | ReceivePOItem
    | UnreceivePOItem
    | CancelPOItem
    | ReserveStock
    | ReleaseReservation
    | ExpireReservation
    | PickStock
    | UnpickStock
    | ShipStock
    | AdjustInventory
    | TransferStock
    | ConfigureLocation
    | ConfigureItem
)
Command = Annotated[AnyCommand, Field(discriminator="type")]
COMMAND_TYPES: tuple[type[_Base], ...] = (
    ConfigureStockItem,
    OrderPOItem,
    ReceivePOItem,
    UnreceivePOItem,
    CancelPOItem,
    ReserveStock,
    ReleaseReservation,
    ExpireReservation,
    PickStock,
    UnpickStock,
    ShipStock,
    AdjustInventory,
    TransferStock,
    ConfigureLocation,
    ConfigureItem,
)
COMMAND_TYPE_NAMES = frozenset(t.__name__ for t in COMMAND_TYPES)
