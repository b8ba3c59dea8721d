"""Events: the public output contract, and how a decision becomes events.

Every event carries an `event_id` derived from the command that caused it, so the
same command always yields the same ids (a re-publish repeats them).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, WithJsonSchema

from stockworker.domain.commands import AnyCommand, PositionCommand, TransferStock
from stockworker.domain.outcome import (
    Decision,
    FieldError,
    PoLineChange,
    PositionChange,
    Rejection,
    RejectionCode,
)
from stockworker.domain.position import Position
from stockworker.domain.purchasing import PoLineStatus

# Fixed namespace for event ids: changing it changes every id, so never do.
EVENT_ID_NAMESPACE = UUID("5f0c2d8e-6f43-4c1e-9d3a-2b7c1e4f8a90")


def event_id(command_id: UUID, kind: str) -> UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{kind}")


# Money in events: a decimal string (exact, unlike a JSON number), e.g. "12.500000".
Money = Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$"})]


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


class Settings(_Model):
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
    quantities: Quantities
    valuation: Valuation
    settings: Settings


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
    # The command's (first) position; None for ConfigureLocation / ConfigureItem.
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


StockEvent = StockChanged | LowStock | StockReplenished | PurchaseOrderLineChanged
ResultEvent = CommandAccepted | CommandRejected
EVENT_TYPES: tuple[type[_Model], ...] = (
    StockChanged,
    LowStock,
    StockReplenished,
    PurchaseOrderLineChanged,
    CommandAccepted,
    CommandRejected,
)


def suggested_order_quantity(position: Position) -> int:
    """Enough to cover back orders and bring available + on_order up to max_quantity,
    and at least reorder_quantity."""
    shortfall = (
        position.max_quantity + position.back_ordered - position.available - position.on_order
    )
    return max(position.reorder_quantity, shortfall, 0)


# The hot path builds events with model_construct: every value comes from validated
# commands and checked positions, so pydantic's validation would only cost time.
def _cause(command: AnyCommand, reason: str | None) -> Cause:
    return Cause.model_construct(
        command_id=command.command_id,
        command_type=command.type,
        reason=reason,
        order_ref=getattr(command, "order_ref", None),
        reservation_id=getattr(command, "reservation_id", None),
        po_number=getattr(command, "po_number", None),
        po_line=getattr(command, "po_line", None),
    )


def stock_changed(command: AnyCommand, change: PositionChange) -> StockChanged:
    before, after = change.before, change.after
    return StockChanged.model_construct(
        event_id=event_id(command.command_id, f"changed/{after.sku}/{after.location}"),
        occurred_at=command.occurred_at,
        sku=after.sku,
        location=after.location,
        version=after.version,
        cause=_cause(command, change.reason),
        deltas=Deltas.model_construct(
            on_hand=after.on_hand - before.on_hand,
            reserved=after.reserved - before.reserved,
            picked=after.picked - before.picked,
            on_order=after.on_order - before.on_order,
            back_ordered=after.back_ordered - before.back_ordered,
            stock_value=after.stock_value - before.stock_value,
        ),
        quantities=Quantities.model_construct(
            on_hand=after.on_hand,
            reserved=after.reserved,
            picked=after.picked,
            on_order=after.on_order,
            back_ordered=after.back_ordered,
            available=after.available,
        ),
        valuation=Valuation.model_construct(
            unit_cost=after.unit_cost, stock_value=after.stock_value
        ),
        settings=Settings.model_construct(
            min_quantity=after.min_quantity,
            max_quantity=after.max_quantity,
            low_stock_threshold=after.low_stock_threshold,
            reorder_quantity=after.reorder_quantity,
            bin=after.bin,
            preferred_supplier=after.preferred_supplier,
        ),
    )


def _low_stock_events(command: AnyCommand, change: PositionChange) -> list[StockEvent]:
    before, after = change.before, change.after
    # A crossing, not a level: only the change that enters or leaves the low state emits.
    if after.is_low == before.is_low:
        return []
    common = {
        "event_id": event_id(command.command_id, f"low-stock/{after.sku}/{after.location}"),
        "occurred_at": command.occurred_at,
        "sku": after.sku,
        "location": after.location,
        "version": after.version,
        "threshold": after.low_stock_threshold,
        "available": after.available,
        "on_order": after.on_order,
        "cause": _cause(command, change.reason),
    }
    if after.is_low:
        return [
            LowStock(
                **common,
                back_ordered=after.back_ordered,
                suggested_order_quantity=suggested_order_quantity(after),
                preferred_supplier=after.preferred_supplier,
            )
        ]
    return [StockReplenished(**common)]


def _po_line_changed(command: AnyCommand, change: PoLineChange) -> PurchaseOrderLineChanged:
    line = change.after
    return PurchaseOrderLineChanged.model_construct(
        event_id=event_id(command.command_id, f"po-line/{line.po_number}/{line.po_line}"),
        occurred_at=command.occurred_at,
        po_number=line.po_number,
        po_line=line.po_line,
        sku=line.sku,
        location=line.location,
        status=line.status,
        planned=line.planned,
        ordered_quantity=line.ordered_quantity,
        received_quantity=line.received_quantity,
        open_quantity=line.open_quantity,
        unit_cost=line.unit_cost,
        received_value=line.received_value,
        supplier=line.supplier,
        expected_date=line.expected_date,
        version=line.version,
        cause=_cause(command, None),
    )


def _field_errors(errors: tuple[FieldError, ...]) -> tuple[FieldErrorModel, ...]:
    return tuple(FieldErrorModel(field=e.field, message=e.message, code=e.code) for e in errors)


def rejected(
    *,
    command_id: UUID,
    command_type: str,
    rejection: Rejection,
    occurred_at: datetime | None,
    sku: str | None,
    location: str | None,
    event_kind: str = "result",
) -> CommandRejected:
    """A rejection; `event_kind` tells apart rejections that are not the command's one
    stored result (an invalid or reused command_id may later get an accepted result)."""
    return CommandRejected(
        event_id=event_id(command_id, event_kind),
        occurred_at=occurred_at,
        command_id=command_id,
        command_type=command_type,
        sku=sku,
        location=location,
        reason_code=rejection.code,
        message=rejection.message,
        field_errors=_field_errors(rejection.field_errors),
        current_version=rejection.current_version,
    )


def command_target(command: AnyCommand) -> tuple[str | None, str | None]:
    """The (sku, location) a command is about, as far as it names one."""
    if isinstance(command, TransferStock):
        return command.sku, command.from_location
    if isinstance(command, PositionCommand):
        return command.sku, command.location
    sku = getattr(command, "sku", None)
    return sku, getattr(command, "location", getattr(command, "code", None))


def outcome_events(command: AnyCommand, decision: Decision) -> tuple[ResultEvent, list[StockEvent]]:
    """The result event for the command and the events of everything it changed."""
    sku, location = command_target(command)
    if isinstance(decision, Rejection):
        return (
            rejected(
                command_id=command.command_id,
                command_type=command.type,
                rejection=decision,
                occurred_at=command.occurred_at,
                sku=sku,
                location=location,
            ),
            [],
        )
    versions = tuple(
        PositionVersion.model_construct(
            sku=c.after.sku, location=c.after.location, version=c.after.version
        )
        for c in decision.positions
    )
    accepted = CommandAccepted.model_construct(
        event_id=event_id(command.command_id, "result"),
        occurred_at=command.occurred_at,
        command_id=command.command_id,
        command_type=command.type,
        sku=sku,
        location=location,
        version=versions[0].version if versions else None,
        positions=versions,
    )
    events: list[StockEvent] = []
    for change in decision.positions:
        events.append(stock_changed(command, change))
        events.extend(_low_stock_events(command, change))
    if decision.po_line is not None:
        events.append(_po_line_changed(command, decision.po_line))
    return accepted, events
