"""The stock rules: decide(position, command) -> Change | Rejection.

Pure functions, one per command type, registered in HANDLERS. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar, cast

from stockworker.domain.commands import (
    AdjustInventory,
    AnyCommand,
    ConfigureStockItem,
    PickStock,
    ReceivePOItem,
    ShipStock,
)
from stockworker.domain.position import Position

# The most a single quantity of a position may reach; far below BIGINT overflow.
MAX_POSITION_QUANTITY = 1_000_000_000_000_000


class RejectionCode(StrEnum):
    INVALID_COMMAND = "INVALID_COMMAND"
    UNKNOWN_POSITION = "UNKNOWN_POSITION"
    INSUFFICIENT_AVAILABLE = "INSUFFICIENT_AVAILABLE"
    INSUFFICIENT_PICKED = "INSUFFICIENT_PICKED"
    INSUFFICIENT_ON_HAND = "INSUFFICIENT_ON_HAND"
    MAX_BELOW_MIN = "MAX_BELOW_MIN"
    QUANTITY_LIMIT = "QUANTITY_LIMIT"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str
    code: str


@dataclass(frozen=True, slots=True)
class Rejection:
    code: RejectionCode
    message: str
    field_errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """An accepted command's effect on one position."""

    before: Position
    after: Position
    reason: str | None = None


Decision = Change | Rejection

C = TypeVar("C", bound=AnyCommand)
Handler = Callable[[Position, C], Decision]


def _changed(before: Position, reason: str | None = None, **fields: Any) -> Decision:
    after = replace(before, version=before.version + 1, **fields)
    for name in ("on_hand", "on_order"):
        if getattr(after, name) > MAX_POSITION_QUANTITY:
            return Rejection(
                RejectionCode.QUANTITY_LIMIT,
                f"{name} would be {getattr(after, name)}, above the limit of "
                f"{MAX_POSITION_QUANTITY}",
            )
    after.check_invariants()
    return Change(before=before, after=after, reason=reason)


def _unknown(position: Position) -> Rejection:
    return Rejection(
        RejectionCode.UNKNOWN_POSITION,
        f"no stock position for sku {position.sku!r} at location {position.location!r}; "
        "configure it first (ConfigureStockItem) or receive stock into it",
    )


def configure_stock_item(position: Position, cmd: ConfigureStockItem) -> Decision:
    if cmd.max_quantity < cmd.min_quantity:
        return Rejection(
            RejectionCode.MAX_BELOW_MIN,
            f"max_quantity {cmd.max_quantity} is below min_quantity {cmd.min_quantity}",
            (FieldError("max_quantity", "must be >= min_quantity", "max_below_min"),),
        )
    return _changed(
        position,
        min_quantity=cmd.min_quantity,
        max_quantity=cmd.max_quantity,
        low_stock_threshold=cmd.low_stock_threshold,
        reorder_quantity=cmd.reorder_quantity,
        bin=cmd.bin,
    )


def receive_po_item(position: Position, cmd: ReceivePOItem) -> Decision:
    return _changed(
        position,
        on_hand=position.on_hand + cmd.quantity,
        on_order=position.on_order - min(position.on_order, cmd.quantity),
    )


def pick_stock(position: Position, cmd: PickStock) -> Decision:
    if not position.exists:
        return _unknown(position)
    if position.available < cmd.quantity:
        return Rejection(
            RejectionCode.INSUFFICIENT_AVAILABLE,
            f"cannot pick {cmd.quantity}: only {position.available} available",
        )
    picks = dict(position.picks)
    picks[cmd.order_ref] = picks.get(cmd.order_ref, 0) + cmd.quantity
    return _changed(position, picked=position.picked + cmd.quantity, picks=picks)


def ship_stock(position: Position, cmd: ShipStock) -> Decision:
    if not position.exists:
        return _unknown(position)
    picked_for_order = position.picks.get(cmd.order_ref, 0)
    if picked_for_order < cmd.quantity:
        return Rejection(
            RejectionCode.INSUFFICIENT_PICKED,
            f"cannot ship {cmd.quantity} for order {cmd.order_ref!r}: "
            f"only {picked_for_order} picked for it here",
        )
    picks = dict(position.picks)
    if picked_for_order == cmd.quantity:
        del picks[cmd.order_ref]
    else:
        picks[cmd.order_ref] = picked_for_order - cmd.quantity
    return _changed(
        position,
        on_hand=position.on_hand - cmd.quantity,
        picked=position.picked - cmd.quantity,
        picks=picks,
    )


def adjust_inventory(position: Position, cmd: AdjustInventory) -> Decision:
    if cmd.counted_quantity is not None:
        new_on_hand = cmd.counted_quantity
    else:
        new_on_hand = position.on_hand + cast(int, cmd.delta)
    committed = position.reserved + position.picked
    if new_on_hand < committed:
        return Rejection(
            RejectionCode.INSUFFICIENT_ON_HAND,
            f"on_hand would be {new_on_hand}, below reserved + picked = {committed}",
        )
    return _changed(position, reason=cmd.reason.value, on_hand=new_on_hand)


HANDLERS: dict[type[Any], Handler[Any]] = {
    ConfigureStockItem: configure_stock_item,
    ReceivePOItem: receive_po_item,
    PickStock: pick_stock,
    ShipStock: ship_stock,
    AdjustInventory: adjust_inventory,
}


def decide(position: Position, command: AnyCommand) -> Decision:
    """Apply one command to one position (version 0 = not yet existing)."""
    return HANDLERS[type(command)](position, command)
