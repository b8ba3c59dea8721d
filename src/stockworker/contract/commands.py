"""Stock commands: the public input contract of `stock.commands.v1`.

Field constraints live here (pydantic); rules that need stored state live in the
handlers (`domain/handlers/`). Every command except the catalog ones names the SKU its
record is keyed by, so one SKU's commands stay in order on one partition.

A command with quantities may give them in one of the item's units (`unit`, see
ConfigureItem): the worker converts them to base units (`domain/units.py`) and refuses
a unit the item does not have. A `unit_cost` is always per base unit.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from stockworker.contract.codes import AdjustmentReason, Tracking
from stockworker.contract.fields import (
    MAX_UNITS,
    BaseUnit,
    Bin,
    LocationCode,
    LotCode,
    Name,
    NonNegativeQuantity,
    PoLineNumber,
    PositiveQuantity,
    QuantityDelta,
    Reference,
    Serials,
    Sku,
    UnitFactor,
    UnitName,
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
    """Create the position of `sku` at `location`, or change its settings.

    Only the settings the command carries change (see `given_settings`); an explicit
    null resets one (a quantity to 0, `bin` and `preferred_supplier` to none).
    """

    type: Literal["ConfigureStockItem"] = "ConfigureStockItem"
    min_quantity: NonNegativeQuantity | None = None
    # max >= min (after the change) is a business rule checked by the domain (MAX_BELOW_MIN).
    max_quantity: NonNegativeQuantity | None = None
    low_stock_threshold: NonNegativeQuantity | None = None
    reorder_quantity: NonNegativeQuantity | None = None
    bin: Bin | None = None
    preferred_supplier: Reference | None = None

    def given_settings(self) -> dict[str, object]:
        """The settings this command carries, by name (None where it clears one)."""
        return {name: getattr(self, name) for name in STOCK_ITEM_SETTINGS & self.model_fields_set}


# The fields of ConfigureStockItem that are settings of the position.
STOCK_ITEM_SETTINGS = frozenset(
    {
        "min_quantity",
        "max_quantity",
        "low_stock_threshold",
        "reorder_quantity",
        "bin",
        "preferred_supplier",
    }
)


class OrderPOItem(PositionCommand):
    """A purchase-order line was placed: on_order grows by its quantity."""

    type: Literal["OrderPOItem"] = "OrderPOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity
    unit: UnitName | None = None
    unit_cost: UnitCost
    supplier: Reference | None = None
    expected_date: date | None = None


class _AddsTrackedStock(BaseModel):
    """A command that may add a lot, with its expiry date."""

    @model_validator(mode="after")
    def _expiry_of_a_lot(self) -> Self:
        if getattr(self, "expires_on", None) is not None and getattr(self, "lot", None) is None:
            raise ValueError("expires_on is the expiry of a lot: give lot too")
        return self


class ReceivePOItem(PositionCommand, _AddsTrackedStock):
    """Goods arrived for a purchase-order line (or unplanned): on_hand grows."""

    type: Literal["ReceivePOItem"] = "ReceivePOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity
    unit: UnitName | None = None
    unit_cost: UnitCost
    serials: Serials | None = None
    lot: LotCode | None = None
    expires_on: date | None = None


class UnreceivePOItem(PositionCommand):
    """Reverse (part of) what was received on a line, at the cost it was received at."""

    type: Literal["UnreceivePOItem"] = "UnreceivePOItem"
    po_number: Reference
    po_line: PoLineNumber
    quantity: PositiveQuantity
    unit: UnitName | None = None
    serials: Serials | None = None
    lot: LotCode | None = None


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
    unit: UnitName | None = None
    order_ref: Reference
    expires_at: AwareDatetime | None = None
    allow_backorder: bool = False


class ReleaseReservation(PositionCommand):
    """Release a reservation, wholly or `quantity` of it (back orders are released first)."""

    type: Literal["ReleaseReservation"] = "ReleaseReservation"
    reservation_id: Reference
    quantity: PositiveQuantity | None = None
    unit: UnitName | None = None


class ExpireReservation(_Base):
    """Sent by the worker itself for a reservation whose expires_at has passed."""

    type: Literal["ExpireReservation"] = "ExpireReservation"
    sku: Sku
    location: LocationCode
    reservation_id: Reference


class ExpireLot(_Base):
    """Sent by the worker itself for a lot with stock and an expiry date: `expiring` when
    it comes within STOCKWORKER_LOT_EXPIRING_DAYS of `expires_on` (LotExpiring), then
    `expired` once that day has passed (LotExpired; its free units stop being available).
    Refused (LOT_NOT_DUE) before its time by `occurred_at`, in UTC, or when already done."""

    type: Literal["ExpireLot"] = "ExpireLot"
    sku: Sku
    location: LocationCode
    lot: LotCode
    stage: Literal["expiring", "expired"]


class PickStock(PositionCommand):
    """Move stock into picked for an order: from the named reservation first, then available."""

    type: Literal["PickStock"] = "PickStock"
    quantity: PositiveQuantity
    unit: UnitName | None = None
    order_ref: Reference
    reservation_id: Reference | None = None
    serials: Serials | None = None
    lot: LotCode | None = None


class UnpickStock(PositionCommand):
    """A cancelled pick: picked stock of an order goes back to available."""

    type: Literal["UnpickStock"] = "UnpickStock"
    quantity: PositiveQuantity
    unit: UnitName | None = None
    order_ref: Reference
    serials: Serials | None = None
    lot: LotCode | None = None


class ShipStock(PositionCommand):
    """Ship picked stock of an order: it leaves on_hand and picked."""

    type: Literal["ShipStock"] = "ShipStock"
    quantity: PositiveQuantity
    unit: UnitName | None = None
    order_ref: Reference
    serials: Serials | None = None
    lot: LotCode | None = None


class AdjustInventory(PositionCommand, _AddsTrackedStock):
    """Correct on_hand by a signed delta, or set it to a counted quantity."""

    type: Literal["AdjustInventory"] = "AdjustInventory"
    delta: QuantityDelta | None = None
    counted_quantity: NonNegativeQuantity | None = None
    unit: UnitName | None = None
    reason: AdjustmentReason
    # Value of stock found; by default the position's moving-average cost.
    unit_cost: UnitCost | None = None
    serials: Serials | None = None
    lot: LotCode | None = None
    expires_on: date | None = None

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
    unit: UnitName | None = None
    expected_version: Version | None = None  # of the source position
    expected_destination_version: Version | None = None
    serials: Serials | None = None
    lot: LotCode | None = None


class _CatalogueCommand(_Base):
    """Creates or changes one catalogue entry; only the fields it carries change.

    `expected_version` works as on positions (0 = the entry does not exist yet). Fields
    that cannot be cleared may be left out but not sent as null.
    """

    expected_version: Version | None = None

    @field_validator("name", "active", "base_unit", "tracking", check_fields=False)
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out (to keep it) but not null")
        return value


class ConfigureLocation(_CatalogueCommand):
    """Create or update a location (warehouse, store, bin area).

    A new location needs a `name` (NAME_REQUIRED); `active` is true unless given.
    """

    type: Literal["ConfigureLocation"] = "ConfigureLocation"
    code: LocationCode
    # Left out: kept. Null is refused, so the published schema does not allow it.
    name: Name | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None


class ConfigureItem(_CatalogueCommand):
    """Create or update an item (SKU) of the catalogue.

    A new item needs a `name` (NAME_REQUIRED); `base_unit` is "EA" and `active` true
    unless given. `units` names the item's other units and how many base units each
    holds; when given it replaces them all (null or {} removes them).
    """

    type: Literal["ConfigureItem"] = "ConfigureItem"
    sku: Sku
    name: Name | SkipJsonSchema[None] = None
    base_unit: BaseUnit | SkipJsonSchema[None] = None
    units: Annotated[dict[UnitName, UnitFactor], Field(max_length=MAX_UNITS)] | None = None
    # none, serial or lot; refused (TRACKING_CHANGE_WITH_STOCK) while any stock is held.
    tracking: Tracking | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None


AnyCommand = (
    ConfigureStockItem
    | OrderPOItem
    | ReceivePOItem
    | UnreceivePOItem
    | CancelPOItem
    | ReserveStock
    | ReleaseReservation
    | ExpireReservation
    | ExpireLot
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
    ExpireLot,
    PickStock,
    UnpickStock,
    ShipStock,
    AdjustInventory,
    TransferStock,
    ConfigureLocation,
    ConfigureItem,
)
COMMAND_TYPE_NAMES = frozenset(t.__name__ for t in COMMAND_TYPES)
