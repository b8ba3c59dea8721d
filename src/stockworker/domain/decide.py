"""The stock rules: decide(state, command, policy) -> Outcome | Rejection.

Pure functions, one per command type, registered in HANDLERS. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from stockworker.contract.commands import (
    AdjustInventory,
    AnyCommand,
    CancelPOItem,
    ConfigureItem,
    ConfigureLocation,
    ConfigureStockItem,
    ExpireLot,
    ExpireReservation,
    OrderPOItem,
    PickStock,
    PositionCommand,
    ReceivePOItem,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
    TransferStock,
    UnpickStock,
    UnreceivePOItem,
)
from stockworker.domain.handlers.catalog import configure_item, configure_location
from stockworker.domain.handlers.common import MAX_POSITION_QUANTITY, version_conflict
from stockworker.domain.handlers.lots import expire_lot
from stockworker.domain.handlers.positions import (
    adjust_inventory,
    configure_stock_item,
    pick_stock,
    ship_stock,
    unpick_stock,
)
from stockworker.domain.handlers.purchasing import (
    cancel_po_item,
    order_po_item,
    receive_po_item,
    unreceive_po_item,
)
from stockworker.domain.handlers.reservations import (
    expire_reservation,
    release_reservation,
    reserve_stock,
)
from stockworker.domain.handlers.transfers import transfer_stock
from stockworker.domain.outcome import Decision, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.position import PositionKey
from stockworker.domain.state import StockView
from stockworker.domain.tracking import lot_count_as_delta, track
from stockworker.domain.units import in_base_units
from stockworker.domain.valuation import money_context

__all__ = ["HANDLERS", "MAX_POSITION_QUANTITY", "Policy", "decide"]

C = TypeVar("C", bound=AnyCommand)
Handler = Callable[[StockView, C, Policy], Decision]

HANDLERS: dict[type[Any], Handler[Any]] = {
    ConfigureStockItem: configure_stock_item,
    OrderPOItem: order_po_item,
    ReceivePOItem: receive_po_item,
    UnreceivePOItem: unreceive_po_item,
    CancelPOItem: cancel_po_item,
    ReserveStock: reserve_stock,
    ReleaseReservation: release_reservation,
    ExpireReservation: expire_reservation,
    ExpireLot: expire_lot,
    PickStock: pick_stock,
    UnpickStock: unpick_stock,
    ShipStock: ship_stock,
    AdjustInventory: adjust_inventory,
    TransferStock: transfer_stock,
    ConfigureLocation: configure_location,
    ConfigureItem: configure_item,
}

DEFAULT_POLICY = Policy()


def decide(view: StockView, command: AnyCommand, policy: Policy = DEFAULT_POLICY) -> Decision:
    """Decide one command against the current state; nothing is changed here.

    Money is summed and multiplied in a context wide enough to stay exact for every
    command within the published limits (see domain/valuation.py).
    """
    with money_context():
        return _decide(view, command, policy)


def _decide(view: StockView, command: AnyCommand, policy: Policy) -> Decision:
    if not isinstance(command, PositionCommand):
        return _handle(view, command, policy)
    position = view.position(PositionKey(command.sku, command.location))
    decision = version_conflict(position, command.expected_version) or _handle(
        view, command, policy
    )
    if isinstance(decision, Rejection) and decision.current_version is None and position.exists:
        # The version a publisher would need to retry with expected_version.
        return replace(decision, current_version=position.version)
    return decision


def _handle(view: StockView, command: AnyCommand, policy: Policy) -> Decision:
    """The command's handler, given its quantities in base units, then which serials or
    lots of a tracked item the changes move (domain/tracking.py)."""
    converted = in_base_units(view, command)
    if isinstance(converted, Rejection):
        return converted
    converted = lot_count_as_delta(view, converted)
    return track(view, converted, HANDLERS[type(command)](view, converted, policy))
