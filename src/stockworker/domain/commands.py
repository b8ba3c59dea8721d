"""Stock commands: the public input contract of `stock.commands.v1`.

Field constraints live here (pydantic); rules that need stored state live in the
handlers (`domain/handlers/`). Every command except the catalog ones names the SKU its
record is keyed by, so one SKU's commands stay in order on one partition.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

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
# Money per base unit: a JSON number or a decimal string, at most 6 decimal places. The
# JSON Schema is spelled out: pydantic's own for Decimal changes between its releases.
UnitCost = Annotated[
    Decimal,
    Field(ge=0, le=1_000_000_000_000, decimal_places=6),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1_000_000_000_000},
                {"type": "string", "pattern": r"^\d{1,13}(\.\d{1,6})?$"},
            ]
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
    """Move available stock of one SKU between two locations, both or neither."""

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
