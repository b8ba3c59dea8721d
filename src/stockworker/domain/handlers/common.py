"""Helpers every handler uses: building a checked position change, common rejections."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from stockworker.contract.codes import RejectionCode
from stockworker.domain.outcome import Decision, Outcome, PositionChange, Rejection
from stockworker.domain.position import Position, Reservation
from stockworker.domain.state import StockView
from stockworker.domain.valuation import MAX_VALUE

# The most a single quantity of a position may reach; far below BIGINT overflow.
MAX_POSITION_QUANTITY = 1_000_000_000_000_000


def fill_back_orders(position: Position) -> Position:
    """Turn back orders into reservations, oldest first, while stock is available."""
    if not position.back_ordered or position.available <= 0:
        return position
    available = position.available
    reservations = dict(position.reservations)
    filled = 0
    for r in sorted(reservations.values(), key=lambda r: r.sequence):
        if available == 0:
            break
        fill = min(available, r.back_ordered)
        if fill:
            reservations[r.reservation_id] = replace(
                r, quantity=r.quantity + fill, back_ordered=r.back_ordered - fill
            )
            available -= fill
            filled += fill
    return replace(
        position,
        reserved=position.reserved + filled,
        back_ordered=position.back_ordered - filled,
        reservations=reservations,
    )


def back_order_shortfall(position: Position) -> Position:
    """Reservations beyond the unexpired stock become back orders again, newest first
    (a lot expired, or units of an expired lot came back from a pick)."""
    short = -position.available
    if short <= 0:
        return position
    reservations = dict(position.reservations)
    moved = 0
    for r in sorted(reservations.values(), key=lambda r: r.sequence, reverse=True):
        if moved == short:
            break
        take = min(r.quantity, short - moved)
        if take:
            reservations[r.reservation_id] = replace(
                r, quantity=r.quantity - take, back_ordered=r.back_ordered + take
            )
            moved += take
    return replace(
        position,
        reserved=position.reserved - moved,
        back_ordered=position.back_ordered + moved,
        reservations=reservations,
    )


def changed(
    before: Position, reason: str | None = None, **fields: Any
) -> PositionChange | Rejection:
    """The position with `fields` changed, its version bumped and back orders filled."""
    after = fill_back_orders(replace(before, version=before.version + 1, **fields))
    for name in ("on_hand", "on_order", "back_ordered"):
        if getattr(after, name) > MAX_POSITION_QUANTITY:
            return Rejection(
                RejectionCode.QUANTITY_LIMIT,
                f"{name} of {after.sku!r} at {after.location!r} would be "
                f"{getattr(after, name)}, above the limit of {MAX_POSITION_QUANTITY}",
                current_version=before.version,
            )
    # Only a rise is refused: a position stored above the limit may still lose stock.
    if after.stock_value > max(MAX_VALUE, before.stock_value):
        return value_limit(
            f"stock_value of {after.sku!r} at {after.location!r}",
            after.stock_value,
            current_version=before.version,
        )
    after.check_invariants()
    return PositionChange(before=before, after=after, reason=reason)


def value_limit(what: str, value: Decimal, current_version: int | None = None) -> Rejection:
    """A change would take a value past MAX_VALUE (see domain/valuation.py)."""
    return Rejection(
        RejectionCode.VALUE_LIMIT,
        f"{what} would be {value}, above the limit of {MAX_VALUE}",
        current_version=current_version,
    )


def single(change: PositionChange | Rejection) -> Decision:
    """The outcome of a command that changes one position (or its rejection)."""
    return change if isinstance(change, Rejection) else Outcome(positions=(change,))


def keep_or_drop(reservations: dict[str, Reservation], reservation: Reservation) -> None:
    """Store `reservation` in `reservations`, or drop it when it holds nothing any more."""
    if reservation.total:
        reservations[reservation.reservation_id] = reservation
    else:
        reservations.pop(reservation.reservation_id, None)


def unknown_position(position: Position) -> Rejection:
    return Rejection(
        RejectionCode.UNKNOWN_POSITION,
        f"no stock position for sku {position.sku!r} at location {position.location!r}; "
        "configure it first (ConfigureStockItem) or receive stock into it",
    )


def version_conflict(position: Position, expected: int | None) -> Rejection | None:
    if expected is None or expected == position.version:
        return None
    return Rejection(
        RejectionCode.VERSION_CONFLICT,
        f"position {position.sku!r} at {position.location!r} is at version "
        f"{position.version}, not the expected {expected}",
        current_version=position.version,
    )


def inactive(view: StockView, sku: str, location: str) -> Rejection | None:
    """Stock may not be added to or reserved at an inactive location or item; it may
    always leave one (picks, shipments, adjustments down, un-receipts, and transfers out
    of an inactive location: a transfer adds stock at its destination, checked here).

    A location or item that was never configured counts as active, so positions work
    without a catalogue; TransferStock alone insists on known locations.
    """
    loc = view.location(location)
    if loc is not None and not loc.active:
        return Rejection(RejectionCode.LOCATION_INACTIVE, f"location {location!r} is inactive")
    item = view.item(sku)
    if item is not None and not item.active:
        return Rejection(RejectionCode.ITEM_INACTIVE, f"item {sku!r} is inactive")
    return None
