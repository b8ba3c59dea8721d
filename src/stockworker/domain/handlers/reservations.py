"""Handlers of reservations: reserve (with back orders), release, expire."""

from __future__ import annotations

from dataclasses import replace

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import ExpireReservation, ReleaseReservation, ReserveStock
from stockworker.domain.handlers.common import (
    changed,
    inactive,
    keep_or_drop,
    single,
    unknown_position,
)
from stockworker.domain.outcome import Decision, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.position import Position, PositionKey, Reservation
from stockworker.domain.state import StockView


def reserve_stock(view: StockView, cmd: ReserveStock, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    refused = inactive(view, cmd.sku, cmd.location)
    if refused is not None:
        return refused
    if not position.exists:
        return unknown_position(position)
    if cmd.expires_at is not None and cmd.expires_at <= cmd.occurred_at:
        return Rejection(
            RejectionCode.EXPIRES_IN_PAST,
            f"expires_at {cmd.expires_at.isoformat()} is not after occurred_at "
            f"{cmd.occurred_at.isoformat()}",
        )
    owner = view.reservation_owner(cmd.reservation_id)
    if owner is not None:
        return Rejection(
            RejectionCode.RESERVATION_EXISTS,
            f"reservation {cmd.reservation_id!r} is already open for {owner.sku!r} at "
            f"{owner.location!r}",
        )
    # Earlier back orders keep available at 0, so a new one always queues behind them.
    held = min(cmd.quantity, max(position.available, 0))
    if held < cmd.quantity and not cmd.allow_backorder:
        return Rejection(
            RejectionCode.INSUFFICIENT_AVAILABLE,
            f"cannot reserve {cmd.quantity}: only {position.available} available "
            "(set allow_backorder to back-order the shortfall)",
        )
    reservations = dict(position.reservations)
    reservations[cmd.reservation_id] = Reservation(
        reservation_id=cmd.reservation_id,
        order_ref=cmd.order_ref,
        quantity=held,
        back_ordered=cmd.quantity - held,
        expires_at=cmd.expires_at,
        sequence=position.version + 1,
    )
    return single(
        changed(
            position,
            reserved=position.reserved + held,
            back_ordered=position.back_ordered + cmd.quantity - held,
            reservations=reservations,
        )
    )


def _not_found(cmd: ReleaseReservation | ExpireReservation, view: StockView) -> Rejection:
    owner = view.reservation_owner(cmd.reservation_id)
    where = (
        f"; it is open for {owner.sku!r} at {owner.location!r}"
        if owner is not None and owner != PositionKey(cmd.sku, cmd.location)
        else ""
    )
    return Rejection(
        RejectionCode.RESERVATION_NOT_FOUND,
        f"no open reservation {cmd.reservation_id!r} for {cmd.sku!r} at {cmd.location!r}" + where,
    )


def _release(position: Position, reservation: Reservation, quantity: int, reason: str) -> Decision:
    """Release `quantity`, taking it from the back-ordered part first (it holds no stock)."""
    from_back_orders = min(quantity, reservation.back_ordered)
    from_reserved = quantity - from_back_orders
    reservations = dict(position.reservations)
    keep_or_drop(
        reservations,
        replace(
            reservation,
            quantity=reservation.quantity - from_reserved,
            back_ordered=reservation.back_ordered - from_back_orders,
        ),
    )
    return single(
        changed(
            position,
            reason=reason,
            reserved=position.reserved - from_reserved,
            back_ordered=position.back_ordered - from_back_orders,
            reservations=reservations,
        )
    )


def release_reservation(view: StockView, cmd: ReleaseReservation, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    reservation = position.reservations.get(cmd.reservation_id)
    if reservation is None:
        return _not_found(cmd, view)
    quantity = reservation.total if cmd.quantity is None else cmd.quantity
    if quantity > reservation.total:
        return Rejection(
            RejectionCode.RELEASE_EXCEEDS_RESERVATION,
            f"cannot release {quantity} of reservation {cmd.reservation_id!r}: it holds "
            f"{reservation.total} ({reservation.back_ordered} back-ordered)",
        )
    return _release(position, reservation, quantity, "RELEASED")


def expire_reservation(view: StockView, cmd: ExpireReservation, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    reservation = position.reservations.get(cmd.reservation_id)
    if reservation is None:
        return _not_found(cmd, view)
    if reservation.expires_at is None or reservation.expires_at > cmd.occurred_at:
        return Rejection(
            RejectionCode.RESERVATION_NOT_EXPIRED,
            f"reservation {cmd.reservation_id!r} does not expire by {cmd.occurred_at.isoformat()}",
        )
    return _release(position, reservation, reservation.total, "EXPIRED")
