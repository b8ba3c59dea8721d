"""Handlers of purchase-order lines: order, receive (planned or not), un-receive, cancel."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import (
    CancelPOItem,
    OrderPOItem,
    ReceivePOItem,
    UnreceivePOItem,
)
from stockworker.domain.handlers.common import changed, inactive, value_limit
from stockworker.domain.outcome import (
    Decision,
    Outcome,
    PoLineChange,
    Rejection,
)
from stockworker.domain.policy import Policy
from stockworker.domain.position import PositionKey
from stockworker.domain.purchasing import PoLine, PoLineKey
from stockworker.domain.state import StockView
from stockworker.domain.valuation import MAX_VALUE, money, share, value_of

PoCommand = OrderPOItem | ReceivePOItem | UnreceivePOItem | CancelPOItem


def _line_key(cmd: PoCommand) -> PoLineKey:
    return PoLineKey(cmd.po_number, cmd.po_line)


def _describe(key: PoLineKey) -> str:
    return f"purchase-order line {key.po_number!r}/{key.po_line}"


def _existing_line(view: StockView, cmd: PoCommand) -> PoLine | Rejection:
    key = _line_key(cmd)
    line = view.po_line(key)
    if line is None:
        return Rejection(RejectionCode.PO_LINE_NOT_FOUND, f"no {_describe(key)}")
    return _same_position(line, cmd) or line


def _same_position(line: PoLine, cmd: PoCommand) -> Rejection | None:
    if (line.sku, line.location) == (cmd.sku, cmd.location):
        return None
    return Rejection(
        RejectionCode.PO_LINE_MISMATCH,
        f"{_describe(line.key)} is for {line.sku!r} at {line.location!r}, "
        f"not {cmd.sku!r} at {cmd.location!r}",
    )


def _with_line(
    view: StockView,
    cmd: PoCommand,
    before: PoLine | None,
    after: PoLine,
    reason: str | None = None,
    **fields: object,
) -> Decision:
    """The line change and its position change: on_order follows the line's open quantity."""
    position = view.position(PositionKey(cmd.sku, cmd.location))
    opened = after.open_quantity - (before.open_quantity if before else 0)
    fields.setdefault("on_order", position.on_order + opened)
    change = changed(position, reason=reason, **fields)
    if isinstance(change, Rejection):
        return change
    after = replace(after, version=(before.version + 1) if before else 1)
    return Outcome(positions=(change,), po_line=PoLineChange(before, after))


def order_po_item(view: StockView, cmd: OrderPOItem, policy: Policy) -> Decision:
    key = _line_key(cmd)
    existing = view.po_line(key)
    if existing is not None:
        return Rejection(
            RejectionCode.PO_LINE_EXISTS,
            f"{_describe(key)} already exists ({existing.status.value})",
        )
    refused = inactive(view, cmd.sku, cmd.location)
    if refused is not None:
        return refused
    line = PoLine(
        po_number=cmd.po_number,
        po_line=cmd.po_line,
        sku=cmd.sku,
        location=cmd.location,
        ordered_quantity=cmd.quantity,
        unit_cost=cmd.unit_cost,
        supplier=cmd.supplier,
        expected_date=cmd.expected_date,
    )
    return _with_line(view, cmd, None, line)


def _receipt_limit(line: PoLine, policy: Policy) -> int:
    tolerance = line.ordered_quantity * policy.over_receipt_tolerance_percent / 100
    return line.ordered_quantity + int(tolerance)  # whole units only, rounded down


def _unplanned_line(cmd: ReceivePOItem) -> PoLine:
    """Goods no order announced: accepted, and kept as an unplanned line so the receipt
    can be reversed like any other."""
    return PoLine(
        po_number=cmd.po_number,
        po_line=cmd.po_line,
        sku=cmd.sku,
        location=cmd.location,
        ordered_quantity=0,
        unit_cost=cmd.unit_cost,
        planned=False,
        version=0,
    )


def _receivable(line: PoLine, cmd: ReceivePOItem, policy: Policy) -> Rejection | None:
    """Why an existing line cannot take this receipt, if it cannot."""
    key = line.key
    mismatch = _same_position(line, cmd)
    if mismatch is not None:
        return mismatch
    if line.cancelled:
        return Rejection(RejectionCode.PO_LINE_CANCELLED, f"{_describe(key)} is cancelled")
    limit = _receipt_limit(line, policy)
    if line.planned and line.received_quantity + cmd.quantity > limit:
        return Rejection(
            RejectionCode.OVER_RECEIPT,
            f"receiving {cmd.quantity} on {_describe(key)} would make "
            f"{line.received_quantity + cmd.quantity} of {line.ordered_quantity} ordered "
            f"(open {line.open_quantity}, tolerance "
            f"{policy.over_receipt_tolerance_percent}% allows up to {limit})",
        )
    return None


def receive_po_item(view: StockView, cmd: ReceivePOItem, policy: Policy) -> Decision:
    refused = inactive(view, cmd.sku, cmd.location)
    if refused is not None:
        return refused
    key = _line_key(cmd)
    before = view.po_line(key)
    if before is not None:
        refused = _receivable(before, cmd, policy)
        if refused is not None:
            return refused
    line = before or _unplanned_line(cmd)
    reason = None if before is not None else "UNPLANNED_RECEIPT"
    received_value = value_of(cmd.unit_cost, cmd.quantity)
    position = view.position(PositionKey(cmd.sku, cmd.location))
    after = replace(
        line,
        received_quantity=line.received_quantity + cmd.quantity,
        received_value=line.received_value + received_value,
    )
    decision = _with_line(
        view,
        cmd,
        before,
        after,
        reason,
        on_hand=position.on_hand + cmd.quantity,
        stock_value=position.stock_value + received_value,
    )
    if isinstance(decision, Outcome) and after.received_value > max(MAX_VALUE, line.received_value):
        # The position's value stays within the limit (stock left since), the line's not.
        return value_limit(f"received_value of {_describe(key)}", after.received_value)
    return decision


def unreceive_po_item(view: StockView, cmd: UnreceivePOItem, policy: Policy) -> Decision:
    line = _existing_line(view, cmd)
    if isinstance(line, Rejection):
        return line
    if cmd.quantity > line.received_quantity:
        return Rejection(
            RejectionCode.UNRECEIVE_EXCEEDS_RECEIVED,
            f"cannot un-receive {cmd.quantity} on {_describe(line.key)}: "
            f"only {line.received_quantity} received",
        )
    position = view.position(PositionKey(cmd.sku, cmd.location))
    # Expired units of a lot may be taken back too: domain/tracking.py then checks that
    # what stays unexpired still covers the reservations.
    free = position.on_hand - position.reserved - position.picked
    if free < cmd.quantity:
        return Rejection(
            RejectionCode.INSUFFICIENT_AVAILABLE,
            f"cannot take back {cmd.quantity}: only {free} of "
            f"{cmd.sku!r} at {cmd.location!r} is still available (the rest is reserved, "
            "picked or gone)",
            current_version=position.version,
        )
    # Exactly what these units added, unless other movements took value out since.
    value = share(line.received_value, cmd.quantity, line.received_quantity)
    position_value = (
        Decimal(0)
        if position.on_hand == cmd.quantity
        else max(position.stock_value - value, Decimal(0))
    )
    after = replace(
        line,
        received_quantity=line.received_quantity - cmd.quantity,
        received_value=line.received_value - value,
    )
    return _with_line(
        view,
        cmd,
        line,
        after,
        "UNRECEIPT",
        on_hand=position.on_hand - cmd.quantity,
        stock_value=money(position_value),
    )


def cancel_po_item(view: StockView, cmd: CancelPOItem, policy: Policy) -> Decision:
    line = _existing_line(view, cmd)
    if isinstance(line, Rejection):
        return line
    if line.cancelled:
        return Rejection(
            RejectionCode.PO_LINE_CANCELLED, f"{_describe(line.key)} is already cancelled"
        )
    if line.open_quantity == 0:
        return Rejection(
            RejectionCode.PO_LINE_CLOSED,
            f"{_describe(line.key)} has nothing open to cancel ({line.status.value})",
        )
    return _with_line(view, cmd, line, replace(line, cancelled=True), "CANCELLED")
