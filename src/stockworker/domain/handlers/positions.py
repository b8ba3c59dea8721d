"""Handlers of commands on one position's quantities and settings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import (
    AdjustInventory,
    ConfigureStockItem,
    PickStock,
    ShipStock,
    UnpickStock,
)
from stockworker.domain.handlers.common import (
    changed,
    inactive,
    keep_or_drop,
    single,
    unknown_position,
)
from stockworker.domain.outcome import Decision, FieldError, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.position import PositionKey
from stockworker.domain.state import StockView
from stockworker.domain.valuation import share, value_of

# What a setting becomes when a ConfigureStockItem sends it as null.
_CLEARED: dict[str, Any] = {
    "min_quantity": 0,
    "max_quantity": 0,
    "low_stock_threshold": 0,
    "reorder_quantity": 0,
    "bin": None,
    "preferred_supplier": None,
}


def configure_stock_item(view: StockView, cmd: ConfigureStockItem, policy: Policy) -> Decision:
    """Change the settings the command carries; keep the others."""
    position = view.position(PositionKey(cmd.sku, cmd.location))
    settings: dict[str, Any] = {
        name: _CLEARED[name] if value is None else value
        for name, value in cmd.given_settings().items()
    }
    after = replace(position, **settings)
    if after.max_quantity < after.min_quantity:
        return Rejection(
            RejectionCode.MAX_BELOW_MIN,
            f"max_quantity {after.max_quantity} would be below min_quantity {after.min_quantity}",
            (FieldError("max_quantity", "must be >= min_quantity", "max_below_min"),),
        )
    return single(changed(position, **settings))


def pick_stock(view: StockView, cmd: PickStock, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    if not position.exists:
        return unknown_position(position)
    reservations = dict(position.reservations)
    from_reservation = 0
    if cmd.reservation_id is not None:
        reservation = reservations.get(cmd.reservation_id)
        if reservation is None:
            return Rejection(
                RejectionCode.RESERVATION_NOT_FOUND,
                f"no open reservation {cmd.reservation_id!r} for {cmd.sku!r} at {cmd.location!r}",
            )
        if reservation.order_ref != cmd.order_ref:
            return Rejection(
                RejectionCode.RESERVATION_ORDER_MISMATCH,
                f"reservation {cmd.reservation_id!r} is for order "
                f"{reservation.order_ref!r}, not {cmd.order_ref!r}",
            )
        from_reservation = min(cmd.quantity, reservation.quantity)
        keep_or_drop(
            reservations, replace(reservation, quantity=reservation.quantity - from_reservation)
        )
    from_available = cmd.quantity - from_reservation
    if position.available < from_available:
        held = f" ({from_reservation} from the reservation)" if cmd.reservation_id else ""
        return Rejection(
            RejectionCode.INSUFFICIENT_AVAILABLE,
            f"cannot pick {cmd.quantity}{held}: only {position.available} available",
        )
    picks = dict(position.picks)
    picks[cmd.order_ref] = picks.get(cmd.order_ref, 0) + cmd.quantity
    return single(
        changed(
            position,
            reserved=position.reserved - from_reservation,
            picked=position.picked + cmd.quantity,
            picks=picks,
            reservations=reservations,
        )
    )


def _take_picks(picks: dict[str, int], order_ref: str, quantity: int) -> None:
    left = picks[order_ref] - quantity
    if left:
        picks[order_ref] = left
    else:
        del picks[order_ref]


def _insufficient_picked(cmd: ShipStock | UnpickStock, picked: int, verb: str) -> Rejection:
    return Rejection(
        RejectionCode.INSUFFICIENT_PICKED,
        f"cannot {verb} {cmd.quantity} for order {cmd.order_ref!r}: "
        f"only {picked} picked for it here",
    )


def unpick_stock(view: StockView, cmd: UnpickStock, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    if not position.exists:
        return unknown_position(position)
    picked_for_order = position.picks.get(cmd.order_ref, 0)
    if picked_for_order < cmd.quantity:
        return _insufficient_picked(cmd, picked_for_order, "unpick")
    picks = dict(position.picks)
    _take_picks(picks, cmd.order_ref, cmd.quantity)
    return single(changed(position, picked=position.picked - cmd.quantity, picks=picks))


def ship_stock(view: StockView, cmd: ShipStock, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    if not position.exists:
        return unknown_position(position)
    picked_for_order = position.picks.get(cmd.order_ref, 0)
    if picked_for_order < cmd.quantity:
        return _insufficient_picked(cmd, picked_for_order, "ship")
    picks = dict(position.picks)
    _take_picks(picks, cmd.order_ref, cmd.quantity)
    return single(
        changed(
            position,
            on_hand=position.on_hand - cmd.quantity,
            picked=position.picked - cmd.quantity,
            picks=picks,
            stock_value=position.stock_value
            - share(position.stock_value, cmd.quantity, position.on_hand),
        )
    )


def adjust_inventory(view: StockView, cmd: AdjustInventory, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    if cmd.counted_quantity is not None:
        new_on_hand = cmd.counted_quantity
    else:
        assert cmd.delta is not None
        new_on_hand = position.on_hand + cmd.delta
    committed = position.reserved + position.picked
    if new_on_hand < committed:
        return Rejection(
            RejectionCode.INSUFFICIENT_ON_HAND,
            f"on_hand would be {new_on_hand}, below reserved + picked = {committed}",
        )
    if new_on_hand > position.on_hand:
        refused = inactive(view, cmd.sku, cmd.location)
        if refused is not None:
            return refused
        unit_cost = position.unit_cost if cmd.unit_cost is None else cmd.unit_cost
        value = position.stock_value + value_of(unit_cost, new_on_hand - position.on_hand)
    else:
        value = position.stock_value - share(
            position.stock_value, position.on_hand - new_on_hand, position.on_hand
        )
    return single(
        changed(position, reason=cmd.reason.value, on_hand=new_on_hand, stock_value=value)
    )
