"""How a decision becomes events: the result event of a command and the events of
everything it changed, each with an id derived from the command (`event_ids.py`).

Events are built as documents: plain dicts with the fields of their model in
`contract/events.py`, in the model's order, holding the values pydantic would hold
(UUID, datetime, Decimal, int, str, None). Building pydantic models here cost the worker
about a tenth of its CPU (`model_construct` of nested models, ~18 µs a StockChanged).
`service/messages.event_json` writes a document as the same bytes as the model's
`model_dump_json`, which tests/support/events.py holds for every document the tests
see, along with every document validating against its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from stockworker.contract.commands import AnyCommand, ExpireLot, PositionCommand, TransferStock
from stockworker.domain.event_ids import EventIds
from stockworker.domain.ledger import reference_names
from stockworker.domain.outcome import (
    Decision,
    FieldError,
    Outcome,
    PoLineChange,
    PositionChange,
    Rejection,
)
from stockworker.domain.position import Position
from stockworker.domain.replenishment import suggested_order_quantity
from stockworker.domain.tracking import SERIAL, Movement, movements

# An event as a document: see the module's docstring.
EventDoc = dict[str, Any]


def _cause(command: AnyCommand, reason: str | None) -> EventDoc:
    cause: EventDoc = {
        "command_id": command.command_id,
        "command_type": command.type,
        "reason": reason,
        "order_ref": None,
        "reservation_id": None,
        "po_number": None,
        "po_line": None,
        "unit": None,
    }
    for name in reference_names(type(command)):
        cause[name] = getattr(command, name)
    return cause


def movement_docs(moved: Sequence[Movement]) -> list[EventDoc]:
    return [
        {
            "serial": m.id if m.kind == SERIAL else None,
            "lot": m.id if m.kind != SERIAL else None,
            "expires_on": m.expires_on,
            "on_hand": m.on_hand,
            "picked": m.picked,
        }
        for m in moved
    ]


def stock_changed(
    occurred_at: datetime,
    change: PositionChange,
    ids: EventIds,
    cause: EventDoc,
    moved: Sequence[Movement] = (),
) -> EventDoc:
    before, after = change.before, change.after
    return {
        "type": "StockChanged",
        "event_id": ids(f"changed/{after.sku}/{after.location}"),
        "occurred_at": occurred_at,
        "sku": after.sku,
        "location": after.location,
        "version": after.version,
        "cause": cause,
        "deltas": {
            "on_hand": after.on_hand - before.on_hand,
            "reserved": after.reserved - before.reserved,
            "picked": after.picked - before.picked,
            "on_order": after.on_order - before.on_order,
            "back_ordered": after.back_ordered - before.back_ordered,
            "stock_value": after.stock_value - before.stock_value,
        },
        "movements": movement_docs(moved) if moved else [],
        "quantities": {
            "on_hand": after.on_hand,
            "reserved": after.reserved,
            "picked": after.picked,
            "on_order": after.on_order,
            "back_ordered": after.back_ordered,
            "available": after.available,
        },
        "valuation": {"unit_cost": after.unit_cost, "stock_value": after.stock_value},
        "settings": {
            "min_quantity": after.min_quantity,
            "max_quantity": after.max_quantity,
            "low_stock_threshold": after.low_stock_threshold,
            "reorder_quantity": after.reorder_quantity,
            "bin": after.bin,
            "preferred_supplier": after.preferred_supplier,
        },
    }


def low_stock_events(
    occurred_at: datetime, change: PositionChange, ids: EventIds, cause: EventDoc
) -> list[EventDoc]:
    before, after = change.before, change.after
    # A crossing, not a level: only the change that enters or leaves the low state emits.
    if after.is_low == before.is_low:
        return []
    common = {
        "event_id": ids(f"low-stock/{after.sku}/{after.location}"),
        "occurred_at": occurred_at,
        "sku": after.sku,
        "location": after.location,
        "version": after.version,
        "threshold": after.low_stock_threshold,
        "available": after.available,
        "on_order": after.on_order,
    }
    if after.is_low:
        return [
            {
                "type": "LowStock",
                **common,
                "back_ordered": after.back_ordered,
                "suggested_order_quantity": suggested_order_quantity(after),
                "preferred_supplier": after.preferred_supplier,
                "cause": cause,
            }
        ]
    return [{"type": "StockReplenished", **common, "cause": cause}]


def _po_line_changed(command: AnyCommand, change: PoLineChange, ids: EventIds) -> EventDoc:
    line = change.after
    return {
        "type": "PurchaseOrderLineChanged",
        "event_id": ids(f"po-line/{line.po_number}/{line.po_line}"),
        "occurred_at": command.occurred_at,
        "po_number": line.po_number,
        "po_line": line.po_line,
        "sku": line.sku,
        "location": line.location,
        "status": line.status,
        "planned": line.planned,
        "ordered_quantity": line.ordered_quantity,
        "received_quantity": line.received_quantity,
        "open_quantity": line.open_quantity,
        "unit_cost": line.unit_cost,
        "received_value": line.received_value,
        "supplier": line.supplier,
        "expected_date": line.expected_date,
        "version": line.version,
        "cause": _cause(command, None),
    }


def _field_errors(errors: tuple[FieldError, ...]) -> list[EventDoc]:
    return [{"field": e.field, "message": e.message, "code": e.code} for e in errors]


def rejected(
    *,
    command_id: UUID,
    command_type: str,
    rejection: Rejection,
    occurred_at: datetime | None,
    sku: str | None,
    location: str | None,
    event_kind: str = "result",
) -> EventDoc:
    """A CommandRejected; `event_kind` tells apart rejections that are not the command's
    one stored result (an invalid or reused command_id may later get an accepted result)."""
    return {
        "type": "CommandRejected",
        "event_id": EventIds(command_id)(event_kind),
        "occurred_at": occurred_at,
        "command_id": command_id,
        "command_type": command_type,
        "sku": sku,
        "location": location,
        "reason_code": rejection.code,
        "message": rejection.message,
        "field_errors": _field_errors(rejection.field_errors),
        "current_version": rejection.current_version,
    }


def is_rejection(result: EventDoc) -> bool:
    return bool(result["type"] == "CommandRejected")


def command_target(command: AnyCommand) -> tuple[str | None, str | None]:
    """The (sku, location) a command is about, as far as it names one."""
    if isinstance(command, TransferStock):
        return command.sku, command.from_location
    if isinstance(command, PositionCommand):
        return command.sku, command.location
    sku = getattr(command, "sku", None)
    return sku, getattr(command, "location", getattr(command, "code", None))


def outcome_events(command: AnyCommand, decision: Decision) -> tuple[EventDoc, list[EventDoc]]:
    """The result event (CommandAccepted or CommandRejected) for the command and the
    events of everything it changed, as documents."""
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
    ids = EventIds(command.command_id)
    positions = [
        {"sku": c.after.sku, "location": c.after.location, "version": c.after.version}
        for c in decision.positions
    ]
    accepted = {
        "type": "CommandAccepted",
        "event_id": ids("result"),
        "occurred_at": command.occurred_at,
        "command_id": command.command_id,
        "command_type": command.type,
        "sku": sku,
        "location": location,
        "version": positions[0]["version"] if positions else _catalogue_version(decision),
        "positions": positions,
    }
    events: list[EventDoc] = []
    for change in decision.positions:
        cause = _cause(command, change.reason)
        moved = movements(change.before, change.after)
        events.append(stock_changed(command.occurred_at, change, ids, cause, moved))
        events.extend(low_stock_events(command.occurred_at, change, ids, cause))
    if decision.po_line is not None:
        events.append(_po_line_changed(command, decision.po_line, ids))
    if isinstance(command, ExpireLot):
        events.append(_lot_event(command, decision.positions[0].after, ids))
    return accepted, events


# The events of the lots' topic, by the stage of the ExpireLot that causes them.
_LOT_EVENT_TYPE = {"expiring": "LotExpiring", "expired": "LotExpired"}
LOT_EVENTS = frozenset(_LOT_EVENT_TYPE.values())


def _lot_event(command: ExpireLot, after: Position, ids: EventIds) -> EventDoc:
    lot = after.holdings[command.lot]
    kind = _LOT_EVENT_TYPE[command.stage]
    return {
        "type": kind,
        "event_id": ids(f"lot/{command.stage}/{after.sku}/{after.location}/{lot.id}"),
        "occurred_at": command.occurred_at,
        "sku": after.sku,
        "location": after.location,
        "lot": lot.id,
        "expires_on": lot.expires_on,
        "on_hand": lot.on_hand,
        "picked": lot.picked,
        "version": after.version,
        "cause": _cause(command, None),
    }


def _catalogue_version(outcome: Outcome) -> int | None:
    entry = outcome.item or outcome.location
    return entry.version if entry is not None else None
