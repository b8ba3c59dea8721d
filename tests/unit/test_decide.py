from __future__ import annotations

import pytest

from stockworker.contract.codes import RejectionCode
from stockworker.domain.position import new_position
from tests.support.domain import KEY, accepted, cmd, configured, outcome, rejected


def test_configure_creates_a_position_with_thresholds() -> None:
    after = accepted(
        new_position(KEY),
        cmd(
            "ConfigureStockItem",
            min_quantity=2,
            max_quantity=50,
            low_stock_threshold=5,
            reorder_quantity=20,
            bin="A-01",
        ),
    )
    assert (after.min_quantity, after.max_quantity, after.low_stock_threshold) == (2, 50, 5)
    assert (after.reorder_quantity, after.bin, after.version) == (20, "A-01", 1)


def test_configure_rejects_max_below_min_without_change() -> None:
    before = configured()
    rejection = rejected(before, cmd("ConfigureStockItem", min_quantity=10, max_quantity=5))
    assert rejection.code is RejectionCode.MAX_BELOW_MIN
    assert rejection.field_errors[0].field == "max_quantity"


def test_an_unplanned_receipt_creates_the_position() -> None:
    created = accepted(new_position(KEY), cmd("ReceivePOItem", quantity=7))
    assert (created.on_hand, created.on_order, created.version) == (7, 0, 1)


def test_pick_moves_available_into_picked_per_order() -> None:
    after = accepted(configured(on_hand=10), cmd("PickStock", quantity=4, order_ref="A"))
    after = accepted(after, cmd("PickStock", quantity=2, order_ref="A"))
    after = accepted(after, cmd("PickStock", quantity=1, order_ref="B"))
    assert (after.on_hand, after.picked, after.available) == (10, 7, 3)
    assert dict(after.picks) == {"A": 6, "B": 1}


def test_pick_rejects_more_than_available() -> None:
    rejection = rejected(configured(on_hand=10, reserved=4, picked=3), cmd("PickStock", quantity=4))
    assert rejection.code is RejectionCode.INSUFFICIENT_AVAILABLE
    assert "only 3 available" in rejection.message


@pytest.mark.parametrize("type_", ["PickStock", "ShipStock"])
def test_unknown_position_is_rejected_for_pick_and_ship(type_: str) -> None:
    assert rejected(new_position(KEY), cmd(type_)).code is RejectionCode.UNKNOWN_POSITION


def test_ship_removes_picked_stock_of_that_order() -> None:
    picked = accepted(configured(on_hand=10), cmd("PickStock", quantity=5, order_ref="A"))
    after = accepted(picked, cmd("ShipStock", quantity=3, order_ref="A"))
    assert (after.on_hand, after.picked, dict(after.picks)) == (7, 2, {"A": 2})
    after = accepted(after, cmd("ShipStock", quantity=2, order_ref="A"))
    assert (after.on_hand, after.picked, dict(after.picks)) == (5, 0, {})


def test_ship_rejects_more_than_the_order_picked_even_if_others_picked_more() -> None:
    picked = accepted(configured(on_hand=10), cmd("PickStock", quantity=5, order_ref="A"))
    rejection = rejected(picked, cmd("ShipStock", quantity=1, order_ref="B"))
    assert rejection.code is RejectionCode.INSUFFICIENT_PICKED
    assert rejected(picked, cmd("ShipStock", quantity=6, order_ref="A")).code is (
        RejectionCode.INSUFFICIENT_PICKED
    )


def test_adjust_by_delta_and_by_count() -> None:
    after = accepted(new_position(KEY), cmd("AdjustInventory", delta=5, reason="FOUND"))
    assert (after.on_hand, after.version) == (5, 1)
    [change] = outcome(
        after, cmd("AdjustInventory", delta=None, counted_quantity=2, reason="COUNT")
    ).positions
    assert (change.after.on_hand, change.reason) == (2, "COUNT")


def test_adjust_rejects_on_hand_below_reserved_plus_picked() -> None:
    position = configured(on_hand=10, reserved=3, picked=4)
    assert rejected(position, cmd("AdjustInventory", delta=-4, reason="LOSS")).code is (
        RejectionCode.INSUFFICIENT_ON_HAND
    )
    assert (
        rejected(
            position, cmd("AdjustInventory", delta=None, counted_quantity=6, reason="COUNT")
        ).code
        is RejectionCode.INSUFFICIENT_ON_HAND
    )
    assert accepted(position, cmd("AdjustInventory", delta=-3, reason="DAMAGE")).on_hand == 7


def test_adjust_below_zero_on_a_new_position_is_rejected() -> None:
    assert rejected(new_position(KEY), cmd("AdjustInventory", delta=-1, reason="LOSS")).code is (
        RejectionCode.INSUFFICIENT_ON_HAND
    )


def test_quantities_cannot_overflow_the_position_limit() -> None:
    huge = configured(on_hand=999_999_999_999_999)
    assert rejected(huge, cmd("ReceivePOItem", quantity=10)).code is RejectionCode.QUANTITY_LIMIT
