"""Stock events: the public output contract (the models of every published event).

How a decision becomes these events, with their stable ids, is in
`domain/outcome_events.py`.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from stockworker.contract.codes import PoLineStatus, RejectionCode
from stockworker.contract.money import Money


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quantities(_Model):
    on_hand: int
    reserved: int
    picked: int
    on_order: int
    back_ordered: int
    available: int


class Deltas(_Model):
    on_hand: int
    reserved: int
    picked: int
    on_order: int
    back_ordered: int
    stock_value: Money


class Valuation(_Model):
    """Moving-average cost per base unit and the value of on_hand (decimal strings)."""

    unit_cost: Money
    stock_value: Money


# A position's settings. Published (schema `$defs` key and title) as `Settings`, its
# name since v1: the key comes from __qualname__, the title from the config. No
# docstring: pydantic would publish it as a description.
class PositionSettings(_Model):
    __qualname__ = "Settings"
    model_config = ConfigDict(title="Settings")

    min_quantity: int
    max_quantity: int
    low_stock_threshold: int
    reorder_quantity: int
    bin: str | None
    preferred_supplier: str | None


class Cause(_Model):
    """The command behind an event, with the references it named."""

    command_id: UUID
    command_type: str
    # RELEASED, EXPIRED, TRANSFER_OUT, TRANSFER_IN, UNPLANNED_RECEIPT, UNRECEIPT,
    # CANCELLED, or an AdjustInventory reason.
    reason: str | None = None
    order_ref: str | None = None
    reservation_id: str | None = None
    po_number: str | None = None
    po_line: int | None = None
    # The unit the command gave its quantity in, when it named one; every quantity of
    # an event is in the item's base unit.
    unit: str | None = None


class Movement(_Model):
    """How a change moved one serial number or lot of a tracked item (deltas)."""

    serial: str | None
    lot: str | None
    expires_on: date | None
    on_hand: int
    picked: int


class FieldErrorModel(_Model):
    field: str
    message: str
    code: str


class StockChanged(_Model):
    type: Literal["StockChanged"] = "StockChanged"
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    version: int
    cause: Cause
    deltas: Deltas
    # The serial numbers or lots the change moved (empty for an untracked item). Before
    # `quantities`: a PositionSnapshot is cut from the event from there on.
    movements: tuple[Movement, ...] = ()
    quantities: Quantities
    valuation: Valuation
    settings: PositionSettings


class LowStock(_Model):
    type: Literal["LowStock"] = "LowStock"
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    version: int
    threshold: int
    available: int
    on_order: int
    back_ordered: int
    suggested_order_quantity: int
    preferred_supplier: str | None
    cause: Cause


class StockReplenished(_Model):
    type: Literal["StockReplenished"] = "StockReplenished"
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    version: int
    threshold: int
    available: int
    on_order: int
    cause: Cause


class LotExpiring(_Model):
    """A lot with stock came within STOCKWORKER_LOT_EXPIRING_DAYS of its expiry (once)."""

    type: Literal["LotExpiring"] = "LotExpiring"
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    lot: str
    expires_on: date
    # The lot's stock at the position: on hand, and of it picked for orders.
    on_hand: int
    picked: int
    version: int
    cause: Cause


class LotExpired(_Model):
    """A lot expired with stock left: its free units are no longer available."""

    type: Literal["LotExpired"] = "LotExpired"
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    lot: str
    expires_on: date
    on_hand: int
    picked: int
    version: int
    cause: Cause


class PurchaseOrderLineChanged(_Model):
    """On `stock.purchase-orders.v1`, keyed by po_number, on every change of a line."""

    type: Literal["PurchaseOrderLineChanged"] = "PurchaseOrderLineChanged"
    event_id: UUID
    occurred_at: AwareDatetime
    po_number: str
    po_line: int
    sku: str
    location: str
    status: PoLineStatus
    planned: bool
    ordered_quantity: int
    received_quantity: int
    open_quantity: int
    unit_cost: Money
    received_value: Money
    supplier: str | None
    expected_date: date | None
    version: int
    cause: Cause


class PositionVersion(_Model):
    sku: str
    location: str
    version: int


class CommandAccepted(_Model):
    type: Literal["CommandAccepted"] = "CommandAccepted"
    event_id: UUID
    occurred_at: AwareDatetime
    command_id: UUID
    command_type: str
    # The command's (first) position and its new version; for ConfigureItem its sku, for
    # ConfigureLocation its code (as `location`), and the entry's new version.
    sku: str | None
    location: str | None
    version: int | None
    # Every position the command changed (two for a transfer), with its new version.
    positions: tuple[PositionVersion, ...] = ()


class CommandRejected(_Model):
    type: Literal["CommandRejected"] = "CommandRejected"
    event_id: UUID
    # None only when the command's own occurred_at could not be read.
    occurred_at: AwareDatetime | None
    command_id: UUID
    command_type: str
    sku: str | None
    location: str | None
    reason_code: RejectionCode
    message: str
    field_errors: tuple[FieldErrorModel, ...] = ()
    current_version: int | None = None


class PositionSnapshot(_Model):
    """On the compacted `stock.positions.v1`, keyed by `sku + "\\u0000" + location` (UTF-8):
    a position's state after its latest change, the StockChanged of `event_id`. Compaction
    keeps the latest record per key; when two are seen, the higher `version` is newer."""

    type: Literal["PositionSnapshot"] = "PositionSnapshot"
    # The StockChanged that produced this state, and when its command occurred.
    event_id: UUID
    occurred_at: AwareDatetime
    sku: str
    location: str
    version: int
    quantities: Quantities
    valuation: Valuation
    settings: PositionSettings


StockEvent = StockChanged | LowStock | StockReplenished | PurchaseOrderLineChanged
ResultEvent = CommandAccepted | CommandRejected
EVENT_TYPES: tuple[type[_Model], ...] = (
    StockChanged,
    LowStock,
    StockReplenished,
    PurchaseOrderLineChanged,
    CommandAccepted,
    CommandRejected,
    PositionSnapshot,
    LotExpiring,
    LotExpired,
)
