"""How a decision becomes events: the result event of a command and the events of
everything it changed, each with an id derived from the command (`event_ids.py`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from stockworker.contract.commands import AnyCommand, PositionCommand, TransferStock
from stockworker.contract.events import (
    Cause,
    CommandAccepted,
    CommandRejected,
    Deltas,
    FieldErrorModel,
    LowStock,
    PositionSettings,
    PositionVersion,
    PurchaseOrderLineChanged,
    Quantities,
    ResultEvent,
    StockChanged,
    StockEvent,
    StockReplenished,
    Valuation,
)
from stockworker.domain.event_ids import event_id
from stockworker.domain.outcome import Decision, FieldError, PoLineChange, PositionChange, Rejection
from stockworker.domain.replenishment import suggested_order_quantity


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
        settings=PositionSettings.model_construct(
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
