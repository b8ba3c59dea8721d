"""TransferStock: two positions change together, or the command is rejected.

Stock may leave an inactive location but not enter one, and an inactive item is not
transferred (that would add stock at the destination).
"""

from __future__ import annotations

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import TransferStock
from stockworker.domain.handlers.common import (
    changed,
    inactive,
    unknown_position,
    version_conflict,
)
from stockworker.domain.outcome import Decision, Outcome, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.position import PositionKey
from stockworker.domain.state import StockView
from stockworker.domain.valuation import share


def _locations_refused(view: StockView, cmd: TransferStock) -> Rejection | None:
    if cmd.from_location == cmd.to_location:
        return Rejection(
            RejectionCode.SAME_LOCATION,
            f"cannot transfer from {cmd.from_location!r} to itself",
        )
    for code in (cmd.from_location, cmd.to_location):
        if view.location(code) is None:
            return Rejection(
                RejectionCode.UNKNOWN_LOCATION,
                f"location {code!r} is not known; configure it first (ConfigureLocation)",
            )
    # Stock may leave an inactive location (emptying a closing one is what transfers are
    # for) but not enter one; an inactive item is refused, as the transfer adds stock at
    # the destination (like AdjustInventory, which refuses an inactive item only when adding).
    return inactive(view, cmd.sku, cmd.to_location)


def transfer_stock(view: StockView, cmd: TransferStock, policy: Policy) -> Decision:
    refused = _locations_refused(view, cmd)
    if refused is not None:
        return refused
    source = view.position(PositionKey(cmd.sku, cmd.from_location))
    destination = view.position(PositionKey(cmd.sku, cmd.to_location))
    if not source.exists:
        return unknown_position(source)
    conflict = version_conflict(source, cmd.expected_version) or version_conflict(
        destination, cmd.expected_destination_version
    )
    if conflict is not None:
        return conflict
    if source.available < cmd.quantity:
        return Rejection(
            RejectionCode.INSUFFICIENT_AVAILABLE,
            f"cannot transfer {cmd.quantity}: only {source.available} available at "
            f"{cmd.from_location!r}",
            current_version=source.version,
        )
    # The stock moves at the source's average cost.
    value = share(source.stock_value, cmd.quantity, source.on_hand)
    out = changed(
        source,
        reason="TRANSFER_OUT",
        on_hand=source.on_hand - cmd.quantity,
        stock_value=source.stock_value - value,
    )
    into = changed(
        destination,
        reason="TRANSFER_IN",
        on_hand=destination.on_hand + cmd.quantity,
        stock_value=destination.stock_value + value,
    )
    if isinstance(out, Rejection):
        return out
    if isinstance(into, Rejection):
        return into
    return Outcome(positions=(out, into))
