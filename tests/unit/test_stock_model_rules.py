"""Rules of reservations, back orders, purchase-order lines, transfers, the catalogue,
optimistic versions and valuation: each accepted path and each rejection."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from stockworker.contract.codes import PoLineStatus, RejectionCode
from stockworker.contract.events import (
    CommandRejected,
    LowStock,
    PurchaseOrderLineChanged,
    StockChanged,
)
from stockworker.domain.decide import Policy
from stockworker.domain.ledger import LedgerQuantities as Quantities
from stockworker.domain.ledger import as_of, ledger_entry, project
from stockworker.domain.position import PositionKey
from stockworker.domain.purchasing import PoLineKey
from stockworker.domain.state import StockState
from tests.support.builders import OCCURRED_AT
from tests.support.domain import KEY, cmd, configured, outcome, rejected, run
from tests.support.events import event_models

T0 = datetime.fromisoformat(OCCURRED_AT)
WH2 = PositionKey("SKU-1", "WH2")


def stocked(on_hand: int = 10, unit_cost: str = "2") -> StockState:
    return run(
        StockState(),
        cmd("ReceivePOItem", po_number="P0", quantity=on_hand, unit_cost=unit_cost),
    )


def position(state: StockState, key: PositionKey = KEY) -> tuple[int, int, int, int, int]:
    p = state.positions[key]
    return p.on_hand, p.reserved, p.picked, p.on_order, p.back_ordered


# -- reservations and back orders ---------------------------------------------------


def test_reserve_moves_available_into_reserved() -> None:
    state = run(stocked(10), cmd("ReserveStock", reservation_id="R1", quantity=4))
    assert position(state) == (10, 4, 0, 0, 0)
    assert state.positions[KEY].available == 6


def test_reserve_without_enough_available_is_rejected_unless_back_ordered() -> None:
    state = stocked(3)
    rejection = rejected(state, cmd("ReserveStock", reservation_id="R1", quantity=5))
    assert rejection.code is RejectionCode.INSUFFICIENT_AVAILABLE
    assert "only 3 available" in rejection.message
    run(state, cmd("ReserveStock", reservation_id="R1", quantity=5, allow_backorder=True))
    assert position(state) == (3, 3, 0, 0, 2)
    assert state.positions[KEY].reservations["R1"].back_ordered == 2


def test_back_orders_are_filled_by_later_receipts_in_arrival_order() -> None:
    state = stocked(2)
    run(
        state,
        cmd("ReserveStock", reservation_id="R1", quantity=5, allow_backorder=True),
        cmd("ReserveStock", reservation_id="R2", quantity=4, order_ref="O2", allow_backorder=True),
        cmd("ReceivePOItem", po_number="P1", quantity=5),
    )
    reservations = state.positions[KEY].reservations
    # R1 (first) is filled completely before R2 gets anything.
    assert (reservations["R1"].quantity, reservations["R1"].back_ordered) == (5, 0)
    assert (reservations["R2"].quantity, reservations["R2"].back_ordered) == (2, 2)
    assert position(state) == (7, 7, 0, 0, 2)


def test_a_new_back_order_queues_behind_older_ones() -> None:
    state = stocked(0 + 1)
    run(
        state,
        cmd("ReserveStock", reservation_id="R1", quantity=3, allow_backorder=True),
        cmd("ReserveStock", reservation_id="R2", quantity=1, order_ref="O2", allow_backorder=True),
    )
    assert state.positions[KEY].reservations["R2"].quantity == 0
    run(state, cmd("ReceivePOItem", po_number="P1", quantity=2))
    assert state.positions[KEY].reservations["R1"].back_ordered == 0
    assert state.positions[KEY].reservations["R2"].back_ordered == 1


def test_reservation_rejections() -> None:
    state = run(stocked(10), cmd("ReserveStock", reservation_id="R1", quantity=1))
    exists = rejected(state, cmd("ReserveStock", reservation_id="R1", quantity=1))
    assert exists.code is RejectionCode.RESERVATION_EXISTS and "'WH1'" in exists.message
    past = cmd(
        "ReserveStock", reservation_id="R9", expires_at=(T0 - timedelta(seconds=1)).isoformat()
    )
    assert rejected(state, past).code is RejectionCode.EXPIRES_IN_PAST
    unknown = rejected(StockState(), cmd("ReserveStock", reservation_id="R2"))
    assert unknown.code is RejectionCode.UNKNOWN_POSITION
    missing = rejected(state, cmd("ReleaseReservation", reservation_id="R2"))
    assert missing.code is RejectionCode.RESERVATION_NOT_FOUND
    elsewhere = rejected(state, cmd("ReleaseReservation", location="WH2", reservation_id="R1"))
    assert elsewhere.code is RejectionCode.RESERVATION_NOT_FOUND
    assert "open for 'SKU-1' at 'WH1'" in elsewhere.message
    too_much = rejected(state, cmd("ReleaseReservation", reservation_id="R1", quantity=2))
    assert too_much.code is RejectionCode.RELEASE_EXCEEDS_RESERVATION


def test_partial_release_drops_the_back_order_first_and_full_release_closes() -> None:
    state = stocked(2)
    run(state, cmd("ReserveStock", reservation_id="R1", quantity=5, allow_backorder=True))
    [change] = outcome(state, cmd("ReleaseReservation", reservation_id="R1", quantity=2)).positions
    assert change.reason == "RELEASED"
    run(state, cmd("ReleaseReservation", reservation_id="R1", quantity=2))
    assert position(state) == (2, 2, 0, 0, 1)
    run(state, cmd("ReleaseReservation", reservation_id="R1"))
    assert position(state) == (2, 0, 0, 0, 0)
    assert state.positions[KEY].reservations == {}


def test_expiry_releases_like_a_release_but_only_once_due() -> None:
    expires = T0 + timedelta(minutes=10)
    state = run(
        stocked(10),
        cmd("ReserveStock", reservation_id="R1", quantity=4, expires_at=expires.isoformat()),
    )
    early = cmd("ExpireReservation", reservation_id="R1", occurred_at=T0.isoformat())
    assert rejected(state, early).code is RejectionCode.RESERVATION_NOT_EXPIRED
    due = cmd("ExpireReservation", reservation_id="R1", occurred_at=expires.isoformat())
    decision = outcome(state, due)
    assert decision.positions[0].reason == "EXPIRED"
    _, events = event_models(due, decision)
    changed = events[0]
    assert isinstance(changed, StockChanged)
    assert (changed.deltas.reserved, changed.cause.reason) == (-4, "EXPIRED")
    assert changed.cause.reservation_id == "R1"


def test_pick_consumes_the_named_reservation_first() -> None:
    state = run(stocked(10), cmd("ReserveStock", reservation_id="R1", quantity=4))
    run(state, cmd("PickStock", reservation_id="R1", quantity=6))
    # 4 from the reservation (which closes), 2 from available.
    assert position(state) == (10, 0, 6, 0, 0)
    assert "R1" not in state.positions[KEY].reservations


def test_pick_with_a_reservation_rejections() -> None:
    state = run(stocked(5), cmd("ReserveStock", reservation_id="R1", quantity=4))
    other_order = rejected(state, cmd("PickStock", reservation_id="R1", order_ref="X"))
    assert other_order.code is RejectionCode.RESERVATION_ORDER_MISMATCH
    unknown = rejected(state, cmd("PickStock", reservation_id="R7"))
    assert unknown.code is RejectionCode.RESERVATION_NOT_FOUND
    too_much = rejected(state, cmd("PickStock", reservation_id="R1", quantity=6))
    assert too_much.code is RejectionCode.INSUFFICIENT_AVAILABLE


def test_unpick_returns_picked_stock_to_available_and_fills_back_orders() -> None:
    state = run(
        stocked(3),
        cmd("PickStock", quantity=3, order_ref="A"),
        cmd("ReserveStock", reservation_id="R1", quantity=2, allow_backorder=True),
    )
    assert position(state) == (3, 0, 3, 0, 2)
    run(state, cmd("UnpickStock", quantity=3, order_ref="A"))
    assert position(state) == (3, 2, 0, 0, 0)
    rejection = rejected(state, cmd("UnpickStock", quantity=1, order_ref="A"))
    assert rejection.code is RejectionCode.INSUFFICIENT_PICKED


# -- purchase-order lines -----------------------------------------------------------


def test_order_receive_and_line_status() -> None:
    state = run(StockState(), cmd("OrderPOItem", quantity=10, unit_cost="2", supplier="ACME"))
    assert position(state) == (0, 0, 0, 10, 0)
    line = state.po_lines[PoLineKey("PO-1", 1)]
    assert (line.status, line.supplier) == (PoLineStatus.NEW, "ACME")
    run(state, cmd("ReceivePOItem", quantity=4, unit_cost="2"))
    assert position(state) == (4, 0, 0, 6, 0)
    assert state.po_lines[PoLineKey("PO-1", 1)].status is PoLineStatus.RECEIVED_PARTIAL
    run(state, cmd("ReceivePOItem", quantity=6, unit_cost="2"))
    assert position(state) == (10, 0, 0, 0, 0)
    assert state.po_lines[PoLineKey("PO-1", 1)].status is PoLineStatus.RECEIVED_FULL


def test_over_receipt_is_rejected_within_the_tolerance_accepted() -> None:
    state = run(StockState(), cmd("OrderPOItem", quantity=10))
    over = rejected(state, cmd("ReceivePOItem", quantity=11))
    assert over.code is RejectionCode.OVER_RECEIPT
    assert "open 10" in over.message
    tolerant = Policy(over_receipt_tolerance_percent=Decimal(10))
    assert outcome(state, cmd("ReceivePOItem", quantity=11), tolerant).positions
    assert rejected(state, cmd("ReceivePOItem", quantity=12), tolerant).code is (
        RejectionCode.OVER_RECEIPT
    )


def test_a_receipt_for_an_unknown_line_is_an_unplanned_receipt() -> None:
    state = StockState()
    decision = outcome(state, cmd("ReceivePOItem", po_number="NEW", quantity=3))
    assert decision.positions[0].reason == "UNPLANNED_RECEIPT"
    assert decision.po_line is not None and not decision.po_line.after.planned
    assert decision.positions[0].after.on_order == 0


def test_unreceive_reverses_quantity_value_and_on_order_exactly() -> None:
    state = run(
        StockState(),
        cmd("ReceivePOItem", po_number="OLD", quantity=3, unit_cost="1"),
        cmd("OrderPOItem", quantity=10, unit_cost="2.5"),
    )
    before = state.positions[KEY]
    run(state, cmd("ReceivePOItem", quantity=4, unit_cost="2.7"))
    assert state.positions[KEY].unit_cost == Decimal("1.971429")  # (3 + 10.8) / 7
    run(state, cmd("UnreceivePOItem", quantity=4))
    after = state.positions[KEY]
    assert (after.on_hand, after.on_order, after.stock_value, after.unit_cost) == (
        before.on_hand,
        before.on_order,
        before.stock_value,
        before.unit_cost,
    )
    assert state.po_lines[PoLineKey("PO-1", 1)].status is PoLineStatus.NEW


def test_unreceive_rejections() -> None:
    state = run(
        StockState(),
        cmd("OrderPOItem", quantity=5),
        cmd("ReceivePOItem", quantity=5),
        cmd("PickStock", quantity=4),
    )
    picked = rejected(state, cmd("UnreceivePOItem", quantity=2))
    assert picked.code is RejectionCode.INSUFFICIENT_AVAILABLE
    assert "no longer" not in picked.message and "still available" in picked.message
    assert rejected(state, cmd("UnreceivePOItem", quantity=6)).code is (
        RejectionCode.UNRECEIVE_EXCEEDS_RECEIVED
    )
    assert rejected(state, cmd("UnreceivePOItem", po_number="NOPE")).code is (
        RejectionCode.PO_LINE_NOT_FOUND
    )
    assert rejected(state, cmd("UnreceivePOItem", location="WH2")).code is (
        RejectionCode.PO_LINE_MISMATCH
    )


def test_cancel_drops_the_open_remainder() -> None:
    state = run(StockState(), cmd("OrderPOItem", quantity=10), cmd("ReceivePOItem", quantity=3))
    decision = outcome(state, cmd("CancelPOItem"))
    _, events = event_models(cmd("CancelPOItem"), decision)
    run(state, cmd("CancelPOItem"))
    assert position(state) == (3, 0, 0, 0, 0)
    [po_event] = [e for e in events if isinstance(e, PurchaseOrderLineChanged)]
    assert (po_event.status, po_event.open_quantity, po_event.received_quantity) == (
        PoLineStatus.CANCELLED,
        0,
        3,
    )
    assert rejected(state, cmd("CancelPOItem")).code is RejectionCode.PO_LINE_CANCELLED
    assert rejected(state, cmd("ReceivePOItem", quantity=1)).code is RejectionCode.PO_LINE_CANCELLED
    full = run(StockState(), cmd("OrderPOItem", quantity=2), cmd("ReceivePOItem", quantity=2))
    assert rejected(full, cmd("CancelPOItem")).code is RejectionCode.PO_LINE_CLOSED
    assert rejected(full, cmd("OrderPOItem")).code is RejectionCode.PO_LINE_EXISTS
    assert rejected(StockState(), cmd("CancelPOItem")).code is RejectionCode.PO_LINE_NOT_FOUND


# -- transfers and the catalogue ----------------------------------------------------


def with_locations(state: StockState, *codes: str, active: bool = True) -> StockState:
    return run(state, *(cmd("ConfigureLocation", code=c, name=c, active=active) for c in codes))


def test_transfer_moves_stock_and_value_between_two_positions() -> None:
    state = with_locations(stocked(10, unit_cost="3"), "WH1", "WH2")
    decision = outcome(state, cmd("TransferStock", quantity=4))
    assert [c.reason for c in decision.positions] == ["TRANSFER_OUT", "TRANSFER_IN"]
    state.apply(decision)
    assert position(state) == (6, 0, 0, 0, 0)
    assert position(state, WH2) == (4, 0, 0, 0, 0)
    assert state.positions[WH2].stock_value == Decimal(12)
    assert state.positions[WH2].version == 1


def test_transfer_rejections() -> None:
    state = stocked(3)
    assert rejected(state, cmd("TransferStock", to_location="WH1")).code is (
        RejectionCode.SAME_LOCATION
    )
    unknown = rejected(state, cmd("TransferStock"))
    assert unknown.code is RejectionCode.UNKNOWN_LOCATION and "'WH1'" in unknown.message
    with_locations(state, "WH1")
    with_locations(state, "WH2", active=False)
    inactive = rejected(state, cmd("TransferStock"))
    assert inactive.code is RejectionCode.LOCATION_INACTIVE and "'WH2'" in inactive.message
    with_locations(state, "WH2")
    assert rejected(state, cmd("TransferStock", quantity=4)).code is (
        RejectionCode.INSUFFICIENT_AVAILABLE
    )
    assert rejected(state, cmd("TransferStock", sku="OTHER")).code is (
        RejectionCode.UNKNOWN_POSITION
    )


def test_a_transfer_whose_destination_fails_changes_neither_position() -> None:
    state = with_locations(stocked(10), "WH1", "WH2")
    state.positions[WH2] = configured(on_hand=999_999_999_999_999, location="WH2")
    rejection = rejected(state, cmd("TransferStock", quantity=5))
    assert rejection.code is RejectionCode.QUANTITY_LIMIT and "'WH2'" in rejection.message
    assert position(state) == (10, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("command_type", "fields"),
    [
        ("ReceivePOItem", {}),
        ("OrderPOItem", {}),
        ("ReserveStock", {}),
        ("AdjustInventory", {"delta": 1, "reason": "FOUND"}),
    ],
)
def test_stock_cannot_be_added_or_reserved_at_inactive_places(
    command_type: str, fields: dict[str, object]
) -> None:
    state = with_locations(stocked(5), "WH1", active=False)
    location = rejected(state, cmd(command_type, **fields))
    assert location.code is RejectionCode.LOCATION_INACTIVE
    assert location.message == "location 'WH1' is inactive"
    state = run(stocked(5), cmd("ConfigureItem", name="Widget", active=False))
    item = rejected(state, cmd(command_type, **fields))
    assert item.code is RejectionCode.ITEM_INACTIVE and "'SKU-1'" in item.message


def test_stock_can_still_leave_an_inactive_location() -> None:
    state = with_locations(stocked(5), "WH1", active=False)
    run(state, cmd("PickStock", quantity=2), cmd("AdjustInventory", delta=-1, reason="LOSS"))
    assert position(state) == (4, 0, 2, 0, 0)


def test_stock_can_be_transferred_out_of_an_inactive_location_but_not_into_one() -> None:
    state = with_locations(stocked(5), "WH2")
    with_locations(state, "WH1", active=False)  # closing: its stock moves out
    run(state, cmd("TransferStock", quantity=2))
    assert (position(state), position(state, WH2)) == ((3, 0, 0, 0, 0), (2, 0, 0, 0, 0))
    back = rejected(state, cmd("TransferStock", from_location="WH2", to_location="WH1"))
    assert (back.code, back.message) == (
        RejectionCode.LOCATION_INACTIVE,
        "location 'WH1' is inactive",
    )


def test_an_inactive_item_is_not_transferred_as_that_adds_stock_at_the_destination() -> None:
    state = run(
        with_locations(stocked(5), "WH1", "WH2"), cmd("ConfigureItem", name="W", active=False)
    )
    refused = rejected(state, cmd("TransferStock", quantity=1))
    assert refused.code is RejectionCode.ITEM_INACTIVE and "'SKU-1'" in refused.message


def test_catalogue_versions_count_changes() -> None:
    state = with_locations(StockState(), "WH1", "WH1")
    assert state.locations["WH1"].version == 2
    run(state, cmd("ConfigureItem", name="Widget", base_unit="BOX"))
    assert (state.items["SKU-1"].base_unit, state.items["SKU-1"].version) == ("BOX", 1)


# -- optimistic versions --------------------------------------------------------------


def test_expected_version_must_match_the_position() -> None:
    state = stocked(5)  # version 1
    conflict = rejected(state, cmd("PickStock", expected_version=3))
    assert (conflict.code, conflict.current_version) == (RejectionCode.VERSION_CONFLICT, 1)
    assert outcome(state, cmd("PickStock", expected_version=1)).positions
    create_only = rejected(state, cmd("ConfigureStockItem", expected_version=0))
    assert create_only.code is RejectionCode.VERSION_CONFLICT
    result, _ = event_models(cmd("PickStock", expected_version=3), conflict)
    assert isinstance(result, CommandRejected) and result.current_version == 1


def test_transfer_checks_both_expected_versions() -> None:
    state = with_locations(stocked(5), "WH1", "WH2")
    assert rejected(state, cmd("TransferStock", expected_version=2)).code is (
        RejectionCode.VERSION_CONFLICT
    )
    destination = rejected(state, cmd("TransferStock", expected_destination_version=1))
    assert (destination.code, destination.current_version) == (RejectionCode.VERSION_CONFLICT, 0)
    assert outcome(state, cmd("TransferStock", expected_version=1, expected_destination_version=0))


# -- valuation and reorder suggestion ---------------------------------------------------


def test_moving_average_cost_and_outbound_at_average() -> None:
    state = run(
        StockState(),
        cmd("ReceivePOItem", po_number="A", quantity=10, unit_cost="1"),
        cmd("ReceivePOItem", po_number="B", quantity=10, unit_cost="2"),
        cmd("PickStock", quantity=5),
        cmd("ShipStock", quantity=5),
    )
    p = state.positions[KEY]
    assert (p.unit_cost, p.stock_value) == (Decimal("1.5"), Decimal("22.5"))
    run(state, cmd("AdjustInventory", delta=-15, reason="LOSS"))
    assert state.positions[KEY].stock_value == 0


def test_low_stock_suggestion_counts_back_orders_and_names_the_supplier() -> None:
    state = run(
        stocked(2),
        cmd(
            "ConfigureStockItem",
            max_quantity=20,
            low_stock_threshold=1,
            reorder_quantity=5,
            preferred_supplier="ACME",
        ),
    )
    reserve = cmd("ReserveStock", reservation_id="R1", quantity=6, allow_backorder=True)
    _, events = event_models(reserve, outcome(state, reserve))
    [low] = [e for e in events if isinstance(e, LowStock)]
    # available 0, 4 back-ordered: 20 + 4 - 0 - 0 on order.
    assert (low.back_ordered, low.suggested_order_quantity, low.preferred_supplier) == (
        4,
        24,
        "ACME",
    )


# -- the ledger -----------------------------------------------------------------------


def test_ledger_projection_and_quantities_as_of_a_moment() -> None:
    state = StockState()
    entries = []
    for i, body in enumerate(
        [
            cmd("ReceivePOItem", quantity=5, occurred_at=(T0 + timedelta(hours=1)).isoformat()),
            cmd("PickStock", quantity=2, occurred_at=(T0 + timedelta(hours=2)).isoformat()),
            cmd("ShipStock", quantity=2, occurred_at=(T0 + timedelta(hours=3)).isoformat()),
        ]
    ):
        decision = outcome(state, body)
        state.apply(decision)
        entries += [
            ledger_entry(c, body.command_id, body.type, body.occurred_at)
            for c in decision.positions
        ]
        assert entries[-1].version == i + 1
    assert project(entries).problems == ()
    assert project(entries).quantities.on_hand == 3
    at_half_past_two = as_of(entries, T0 + timedelta(hours=2, minutes=30))
    assert (at_half_past_two.on_hand, at_half_past_two.picked) == (5, 2)
    assert as_of(entries, T0) == Quantities()
    # A gap or a wrong delta is reported.
    assert project([entries[0], entries[2]]).problems
