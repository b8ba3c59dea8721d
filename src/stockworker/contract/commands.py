"""Stock commands: the public input contract of `stock.commands.v1`.

Field constraints live here (pydantic); rules that need stored state live in the
handlers (`domain/handlers/`). Every command except the catalog ones names the SKU its
record is keyed by, so one SKU's commands stay in order on one partition.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from stockworker.contract.codes import AdjustmentReason
from stockworker.contract.fields import (
    BaseUnit,
    Bin,
    LocationCode,
    Name,
    NonNegativeQuantity,
    PoLineNumber,
    PositiveQuantity,
    QuantityDelta,
    Reference,
    Sku,
    Version,
)
from stockworker.contract.money import UnitCost


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
    bin: Bin | None = None
    preferred_supplier: Reference | None = None


class OrderPOItem(PositionCommand):
    """A purchase-order line was placed: on_order grows by its quantity."""

    type: Literal["OrderPOItem"] = "OrderPOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity
    unit_cost: UnitCost
    supplier: Reference | None = None
    expected_date: date | None = None


class ReceivePOItem(PositionCommand):
    """Goods arrived for a purchase-order line (or unplanned): on_hand grows."""

    type: Literal["ReceivePOItem"] = "ReceivePOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity
    unit_cost: UnitCost


class UnreceivePOItem(PositionCommand):
    """Reverse (part of) what was received on a line, at the cost it was received at."""

    type: Literal["UnreceivePOItem"] = "UnreceivePOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity


class CancelPOItem(PositionCommand):
    """Cancel the open remainder of a line: on_order drops by what was still expected."""

    type: Literal["CancelPOItem"] = "CancelPOItem"
    po_number: Reference
    po_line: PoLineNumber


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
    delta: QuantityDelta | None = None
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
    base_unit: BaseUnit = "EA"
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
