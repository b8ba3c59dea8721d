"""Stock commands: the public input contract of `stock.commands.v1`.

Field constraints live here (pydantic); rules that need the position's state live in
`decide.py`. Every command names one position (sku, location) in this version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Quantities are integers in the item's base unit. The upper bound keeps every sum
# of quantities inside PostgreSQL's BIGINT and rejects absurd input early.
MAX_QUANTITY = 1_000_000_000_000

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
LocationCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Reference = Annotated[str, Field(min_length=1, max_length=100)]
PositiveQuantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
NonNegativeQuantity = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]


class AdjustmentReason(StrEnum):
    COUNT = "COUNT"
    DAMAGE = "DAMAGE"
    LOSS = "LOSS"
    FOUND = "FOUND"
    RETURN = "RETURN"
    CORRECTION = "CORRECTION"


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    command_id: UUID
    occurred_at: AwareDatetime
    sku: Sku
    location: LocationCode


class ConfigureStockItem(_Command):
    """Create or update the position of `sku` at `location` and its thresholds."""

    type: Literal["ConfigureStockItem"] = "ConfigureStockItem"
    min_quantity: NonNegativeQuantity
    # max >= min is a business rule checked by the domain (reason MAX_BELOW_MIN).
    max_quantity: NonNegativeQuantity
    low_stock_threshold: NonNegativeQuantity
    reorder_quantity: NonNegativeQuantity = 0
    bin: Annotated[str, Field(max_length=50)] | None = None


class ReceivePOItem(_Command):
    """Goods arrived for a purchase-order line: on_hand grows, on_order shrinks."""

    type: Literal["ReceivePOItem"] = "ReceivePOItem"
    po_number: Reference
    po_line: Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
    quantity: PositiveQuantity
    unit_cost: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


class PickStock(_Command):
    """Move available stock into picked for an order."""

    type: Literal["PickStock"] = "PickStock"
    quantity: PositiveQuantity
    order_ref: Reference


class ShipStock(_Command):
    """Ship picked stock of an order: it leaves on_hand and picked."""

    type: Literal["ShipStock"] = "ShipStock"
    quantity: PositiveQuantity
    order_ref: Reference


class AdjustInventory(_Command):
    """Correct on_hand by a signed delta, or set it to a counted quantity."""

    type: Literal["AdjustInventory"] = "AdjustInventory"
    delta: Annotated[int, Field(strict=True, ge=-MAX_QUANTITY, le=MAX_QUANTITY)] | None = None
    counted_quantity: NonNegativeQuantity | None = None
    reason: AdjustmentReason

    @model_validator(mode="after")
    def _exactly_one_of_delta_or_count(self) -> Self:
        if (self.delta is None) == (self.counted_quantity is None):
            raise ValueError("give exactly one of delta or counted_quantity")
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


Command = Annotated[
    ConfigureStockItem | ReceivePOItem | PickStock | ShipStock | AdjustInventory,
    Field(discriminator="type"),
]
COMMAND_TYPES: tuple[type[_Command], ...] = (
    ConfigureStockItem,
    ReceivePOItem,
    PickStock,
    ShipStock,
    AdjustInventory,
)
COMMAND_TYPE_NAMES = frozenset(t.__name__ for t in COMMAND_TYPES)
AnyCommand = ConfigureStockItem | ReceivePOItem | PickStock | ShipStock | AdjustInventory
