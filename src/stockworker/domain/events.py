"""Events: the public output contract, and how a decision becomes events.

Every event carries an `event_id` derived from the command that caused it, so the
same command always yields the same ids (a re-publish repeats them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from stockworker.domain.commands import AnyCommand
from stockworker.domain.decide import Change, Decision, FieldError, Rejection, RejectionCode
from stockworker.domain.position import Position

# Fixed namespace for event ids: changing it changes every id, so never do.
EVENT_ID_NAMESPACE = UUID("5f0c2d8e-6f43-4c1e-9d3a-2b7c1e4f8a90")


def event_id(command_id: UUID, kind: str) -> UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{kind}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quantities(_Model):
    on_hand: int
    reserved: int
    picked: int
    on_order: int
    available: int


class Deltas(_Model):
    on_hand: int
    reserved: int
    picked: int
    on_order: int


class Settings(_Model):
    min_quantity: int
    max_quantity: int
    low_stock_threshold: int
    reorder_quantity: int
    bin: str | None


class Cause(_Model):
    command_id: UUID
    command_type: str
    reason: str | None = None


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
    suggested_order_quantity: int
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


class CommandAccepted(_Model):
    type: Literal["CommandAccepted"] = "CommandAccepted"
    event_id: UUID
    occurred_at: AwareDatetime
    command_id: UUID
    command_type: str
    sku: str
    location: str
    version: int


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


StockEvent = StockChanged | LowStock | StockReplenished
ResultEvent = CommandAccepted | CommandRejected
EVENT_TYPES: tuple[type[_Model], ...] = (
    StockChanged,
    LowStock,
    StockReplenished,
    CommandAccepted,
    CommandRejected,
)


def suggested_order_quantity(position: Position) -> int:
    """Enough to bring available + on_order up to max_quantity, and at least reorder_quantity."""
    shortfall = position.max_quantity - position.available - position.on_order
    return max(position.reorder_quantity, shortfall, 0)


def _quantities(p: Position) -> Quantities:
    return Quantities(
        on_hand=p.on_hand,
        reserved=p.reserved,
        picked=p.picked,
        on_order=p.on_order,
        available=p.available,
    )


def _stock_events(command: AnyCommand, change: Change) -> list[StockEvent]:
    before, after = change.before, change.after
    cause = Cause(command_id=command.command_id, command_type=command.type, reason=change.reason)
    kind = f"changed/{after.sku}/{after.location}"
    events: list[StockEvent] = [
        StockChanged(
            event_id=event_id(command.command_id, kind),
            occurred_at=command.occurred_at,
            sku=after.sku,
            location=after.location,
            version=after.version,
            cause=cause,
            deltas=Deltas(
                on_hand=after.on_hand - before.on_hand,
                reserved=after.reserved - before.reserved,
                picked=after.picked - before.picked,
                on_order=after.on_order - before.on_order,
            ),
            quantities=_quantities(after),
            settings=Settings(
                min_quantity=after.min_quantity,
                max_quantity=after.max_quantity,
                low_stock_threshold=after.low_stock_threshold,
                reorder_quantity=after.reorder_quantity,
                bin=after.bin,
            ),
        )
    ]
    # A crossing, not a level: only the change that enters or leaves the low state emits.
    if after.is_low != before.is_low:
        level = {
            "event_id": event_id(command.command_id, f"low-stock/{after.sku}/{after.location}"),
            "occurred_at": command.occurred_at,
            "sku": after.sku,
            "location": after.location,
            "version": after.version,
            "threshold": after.low_stock_threshold,
            "available": after.available,
            "on_order": after.on_order,
            "cause": cause,
        }
        events.append(
            LowStock(**level, suggested_order_quantity=suggested_order_quantity(after))
            if after.is_low
            else StockReplenished(**level)
        )
    return events


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
    current_version: int | None,
) -> CommandRejected:
    return CommandRejected(
        event_id=event_id(command_id, "result"),
        occurred_at=occurred_at,
        command_id=command_id,
        command_type=command_type,
        sku=sku,
        location=location,
        reason_code=rejection.code,
        message=rejection.message,
        field_errors=_field_errors(rejection.field_errors),
        current_version=current_version,
    )


def outcome_events(
    command: AnyCommand, before: Position, decision: Decision
) -> tuple[ResultEvent, list[StockEvent]]:
    """The result event for the command and the stock events of its change."""
    if isinstance(decision, Rejection):
        result: ResultEvent = rejected(
            command_id=command.command_id,
            command_type=command.type,
            rejection=decision,
            occurred_at=command.occurred_at,
            sku=command.sku,
            location=command.location,
            current_version=before.version if before.exists else None,
        )
        return result, []
    accepted = CommandAccepted(
        event_id=event_id(command.command_id, "result"),
        occurred_at=command.occurred_at,
        command_id=command.command_id,
        command_type=command.type,
        sku=decision.after.sku,
        location=decision.after.location,
        version=decision.after.version,
    )
    return accepted, _stock_events(command, decision)
