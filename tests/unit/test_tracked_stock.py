"""Tracked stock (issue 13): serial numbers and lots, first-expiry-first-out, each
accepted path and each rejection, in the pure domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stockworker.contract.codes import RejectionCode
from stockworker.contract.events import LotExpiring, StockChanged
from stockworker.domain.decide import Policy
from stockworker.domain.ledger import holding_differences, holdings_as_of, ledger_entry, project
from stockworker.domain.position import PositionKey
from stockworker.domain.state import StockState
from stockworker.domain.tracking import Movement
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.lot_expiry import LotExpiry
from stockworker.service.topics import Topics
from tests.support.domain import KEY, cmd, outcome, rejected, run
from tests.support.events import event_models
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

WH2 = PositionKey("SKU-1", "WH2")


def item(tracking: str) -> StockState:
    return run(
        StockState(),
        cmd("ConfigureLocation", code="WH1", name="One"),
        cmd("ConfigureLocation", code="WH2", name="Two"),
        cmd("ConfigureItem", name="Widget", tracking=tracking),
    )


def receive(serials: list[str] | None = None, location: str = "WH1", **fields: Any) -> Any:
    quantity = fields.pop("quantity", len(serials) if serials else None)
    extra = {"serials": serials} if serials else {}
    return cmd(
        "ReceivePOItem",
        location=location,
        po_number=f"P-{location}",
        quantity=quantity,
        unit_cost="10",
        **extra,
        **fields,
    )


def held(state: StockState, key: PositionKey = KEY) -> dict[str, tuple[int, dict[str, int]]]:
    return {h.id: (h.on_hand, dict(h.picks)) for h in state.positions[key].holdings.values()}


def serials_of(state: StockState, key: PositionKey = KEY) -> list[str]:
    return sorted(state.positions[key].holdings)


# -- serial numbers -------------------------------------------------------------------


def test_a_serialised_receipt_holds_each_serial_number() -> None:
    state = run(item("serial"), receive(["S3", "S1", "S2"]))
    assert state.positions[KEY].on_hand == 3
    assert held(state) == {"S1": (1, {}), "S2": (1, {}), "S3": (1, {})}


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (lambda: receive(quantity=2), RejectionCode.SERIALS_REQUIRED),
        (lambda: receive(["S1"], quantity=2), RejectionCode.SERIAL_COUNT_MISMATCH),
        (lambda: receive(quantity=1, lot="L1"), RejectionCode.NOT_TRACKED),
        (lambda: receive(["A", "B"], unit="EA"), None),
    ],
)
def test_a_receipt_of_a_serialised_item_names_its_units(command: Any, code: Any) -> None:
    state = item("serial")
    if code is None:
        assert outcome(state, command()).positions
    else:
        assert rejected(state, command()).code is code


def test_a_serial_number_in_stock_anywhere_is_not_received_again() -> None:
    state = run(item("serial"), receive(["S1", "S2"]))
    elsewhere = rejected(state, receive(["S9", "S2"], location="WH2"))
    assert elsewhere.code is RejectionCode.SERIAL_IN_STOCK
    assert "'S2' of 'SKU-1' is already in stock at WH1" in elsewhere.message.replace("'WH1'", "WH1")
    assert rejected(state, receive(["S1"])).code is RejectionCode.SERIAL_IN_STOCK
    # Once shipped it may come back (a return).
    run(
        state,
        cmd("PickStock", quantity=1, order_ref="O1", serials=["S2"]),
        cmd("ShipStock", quantity=1, order_ref="O1", serials=["S2"]),
    )
    run(state, receive(["S2"], location="WH2"))
    assert serials_of(state, WH2) == ["S2"]


def test_a_pick_takes_the_lowest_free_serials_unless_it_names_them() -> None:
    state = run(item("serial"), receive(["S4", "S2", "S9", "S1"]))
    run(state, cmd("PickStock", quantity=2, order_ref="O1"))
    assert held(state)["S1"] == (1, {"O1": 1}) and held(state)["S2"] == (1, {"O1": 1})
    run(state, cmd("PickStock", quantity=1, order_ref="O2", serials=["S9"]))
    assert held(state)["S9"] == (1, {"O2": 1})
    taken = rejected(state, cmd("PickStock", quantity=1, order_ref="O3", serials=["S1"]))
    assert taken.code is RejectionCode.SERIAL_NOT_AVAILABLE
    absent = rejected(state, cmd("PickStock", quantity=1, order_ref="O3", serials=["S7"]))
    assert absent.code is RejectionCode.SERIAL_NOT_AT_POSITION


def test_a_shipment_names_serials_picked_for_its_order() -> None:
    state = run(
        item("serial"),
        receive(["S1", "S2", "S3"]),
        cmd("PickStock", quantity=2, order_ref="O1"),
    )
    unnamed = rejected(state, cmd("ShipStock", quantity=1, order_ref="O1"))
    assert unnamed.code is RejectionCode.SERIALS_REQUIRED
    not_picked = rejected(state, cmd("ShipStock", quantity=1, order_ref="O1", serials=["S3"]))
    assert not_picked.code is RejectionCode.SERIAL_NOT_PICKED
    run(state, cmd("ShipStock", quantity=1, order_ref="O1", serials=["S2"]))
    assert held(state) == {"S1": (1, {"O1": 1}), "S3": (1, {})}
    assert (state.positions[KEY].on_hand, state.positions[KEY].picked) == (2, 1)
    run(state, cmd("UnpickStock", quantity=1, order_ref="O1", serials=["S1"]))
    assert held(state) == {"S1": (1, {}), "S3": (1, {})}


def test_a_transfer_moves_the_named_serials() -> None:
    state = run(item("serial"), receive(["S1", "S2", "S3"]))
    assert rejected(state, cmd("TransferStock", quantity=1)).code is RejectionCode.SERIALS_REQUIRED
    run(state, cmd("TransferStock", quantity=2, serials=["S3", "S1"]))
    assert serials_of(state) == ["S2"] and serials_of(state, WH2) == ["S1", "S3"]
    assert state.serial_location("SKU-1", "S1") == "WH2"


def test_adjustments_and_unreceipts_name_the_serials() -> None:
    state = run(item("serial"), receive(["S1", "S2", "S3"]))
    run(state, cmd("AdjustInventory", delta=-1, reason="DAMAGE", serials=["S2"]))
    run(state, cmd("AdjustInventory", delta=1, reason="FOUND", serials=["S8"]))
    assert serials_of(state) == ["S1", "S3", "S8"]
    run(state, cmd("UnreceivePOItem", po_number="P-WH1", quantity=1, serials=["S1"]))
    assert serials_of(state) == ["S3", "S8"]
    gone = rejected(state, cmd("AdjustInventory", delta=-1, reason="LOSS", serials=["S1"]))
    assert gone.code is RejectionCode.SERIAL_NOT_AT_POSITION


def test_a_count_of_a_serialised_item_names_every_unit_found() -> None:
    state = run(item("serial"), receive(["S1", "S2", "S3"]))
    count = cmd(
        "AdjustInventory", delta=..., counted_quantity=3, reason="COUNT", serials=["S1", "S3", "S7"]
    )
    run(state, count)
    assert serials_of(state) == ["S1", "S3", "S7"] and state.positions[KEY].on_hand == 3


def test_events_and_the_ledger_carry_the_serials_moved() -> None:
    state = item("serial")
    receipt = receive(["S2", "S1"])
    decision = outcome(state, receipt)
    _, events = event_models(receipt, decision)
    changed = next(e for e in events if isinstance(e, StockChanged))
    assert [(m.serial, m.lot, m.on_hand, m.picked) for m in changed.movements] == [
        ("S1", None, 1, 0),
        ("S2", None, 1, 0),
    ]
    entry = ledger_entry(
        decision.positions[0], receipt.command_id, receipt.type, receipt.occurred_at
    )
    assert entry.movements == (
        Movement("serial", "S1", None, 1, 0),
        Movement("serial", "S2", None, 1, 0),
    )


def test_an_untracked_item_refuses_serials_and_lots() -> None:
    state = StockState()
    assert rejected(state, receive(["S1"])).code is RejectionCode.NOT_TRACKED
    assert rejected(state, receive(quantity=1, lot="L1")).code is RejectionCode.NOT_TRACKED
    untracked = run(StockState(), receive(quantity=4))
    assert untracked.positions[KEY].holdings == {}


def test_tracking_changes_only_while_no_stock_is_held() -> None:
    state = run(item("none"), receive(quantity=2))
    refused = rejected(state, cmd("ConfigureItem", name=..., tracking="serial"))
    assert refused.code is RejectionCode.TRACKING_CHANGE_WITH_STOCK
    run(state, cmd("AdjustInventory", delta=-2, reason="LOSS"))
    run(state, cmd("ConfigureItem", name=..., tracking="serial"))
    assert state.items["SKU-1"].tracking == "serial"
    # Stock held at a position not loaded in this batch counts too.
    loaded_elsewhere = StockState.of(items=state.items.values(), stocked=[WH2])
    refused = rejected(loaded_elsewhere, cmd("ConfigureItem", name=..., tracking="lot"))
    assert refused.code is RejectionCode.TRACKING_CHANGE_WITH_STOCK


# -- lots -----------------------------------------------------------------------------


def lots() -> StockState:
    return run(
        item("lot"),
        receive(quantity=5, lot="LATE", expires_on="2027-03-01"),
        receive(quantity=4, lot="SOON", expires_on="2026-12-15"),
        receive(quantity=3, lot="NONE"),
    )


def test_lot_receipts_hold_stock_per_lot() -> None:
    state = lots()
    assert held(state) == {"LATE": (5, {}), "SOON": (4, {}), "NONE": (3, {})}
    assert state.positions[KEY].holdings["SOON"].expires_on.isoformat() == "2026-12-15"  # type: ignore[union-attr]
    assert rejected(state, receive(quantity=1)).code is RejectionCode.LOT_REQUIRED
    mismatch = rejected(state, receive(quantity=1, lot="SOON", expires_on="2026-12-20"))
    assert mismatch.code is RejectionCode.LOT_EXPIRY_MISMATCH
    run(state, receive(quantity=1, lot="SOON"))  # no date: the lot's own
    assert held(state)["SOON"] == (5, {})


def test_a_pick_takes_the_first_expiring_lot_first() -> None:
    state = lots()
    run(state, cmd("PickStock", quantity=6, order_ref="O1"))
    # SOON (4) then LATE (2); lots without a date go last.
    assert held(state) == {"SOON": (4, {"O1": 4}), "LATE": (5, {"O1": 2}), "NONE": (3, {})}
    run(state, cmd("PickStock", quantity=2, order_ref="O2", lot="NONE"))
    assert held(state)["NONE"] == (3, {"O2": 2})
    short = rejected(state, cmd("PickStock", quantity=2, order_ref="O3", lot="NONE"))
    assert short.code is RejectionCode.LOT_INSUFFICIENT
    assert "has 1 free to pick, not 2" in short.message
    absent = rejected(state, cmd("PickStock", quantity=1, order_ref="O3", lot="OTHER"))
    assert absent.code is RejectionCode.LOT_NOT_FOUND


def test_equal_expiry_dates_go_by_arrival() -> None:
    state = run(
        item("lot"),
        receive(quantity=2, lot="B", expires_on="2027-01-01"),
        receive(quantity=2, lot="A", expires_on="2027-01-01"),
    )
    run(state, cmd("PickStock", quantity=3, order_ref="O1"))
    assert held(state) == {"B": (2, {"O1": 2}), "A": (2, {"O1": 1})}


def test_shipping_a_lot_item_takes_what_the_order_picked() -> None:
    state = run(lots(), cmd("PickStock", quantity=6, order_ref="O1"))
    run(state, cmd("ShipStock", quantity=5, order_ref="O1"))
    # First-expiry first again: all of SOON, then one of LATE.
    assert held(state) == {"LATE": (4, {"O1": 1}), "NONE": (3, {})}
    assert state.positions[KEY].on_hand == 7


def test_a_transfer_moves_lots_first_expiry_first_with_their_dates() -> None:
    state = run(lots(), cmd("TransferStock", quantity=6))
    assert held(state) == {"LATE": (3, {}), "NONE": (3, {})}
    assert held(state, WH2) == {"SOON": (4, {}), "LATE": (2, {})}
    assert str(state.positions[WH2].holdings["LATE"].expires_on) == "2027-03-01"
    run(state, cmd("TransferStock", quantity=1, lot="NONE"))
    assert held(state, WH2)["NONE"] == (1, {})


def test_adjustments_of_a_lot_item_name_the_lot_and_a_count_is_the_lot_s() -> None:
    state = lots()
    assert rejected(state, cmd("AdjustInventory", delta=-1, reason="LOSS")).code is (
        RejectionCode.LOT_REQUIRED
    )
    run(state, cmd("AdjustInventory", delta=-2, reason="DAMAGE", lot="LATE"))
    run(state, cmd("AdjustInventory", counted_quantity=1, delta=..., reason="COUNT", lot="SOON"))
    assert held(state) == {"LATE": (3, {}), "SOON": (1, {}), "NONE": (3, {})}
    assert state.positions[KEY].on_hand == 7
    run(state, cmd("AdjustInventory", counted_quantity=0, delta=..., reason="COUNT", lot="SOON"))
    assert "SOON" not in held(state)


# -- the ledger: project and as-of fold the movements ---------------------------------


def test_the_ledger_folds_back_to_the_holdings() -> None:
    state = item("lot")
    entries = []
    for command in (
        receive(quantity=5, lot="A", expires_on="2027-01-01"),
        receive(quantity=3, lot="B"),
        cmd("PickStock", quantity=6, order_ref="O1"),
        cmd("ShipStock", quantity=4, order_ref="O1"),
        cmd("TransferStock", quantity=2),
    ):
        decision = outcome(state, command)
        state.apply(decision)
        entries += [
            ledger_entry(c, command.command_id, command.type, command.occurred_at)
            for c in decision.positions
        ]
    for key in (KEY, WH2):
        projection = project([e for e in entries if (e.sku, e.location) == key])
        stored = {h.id: (h.on_hand, h.picked) for h in state.positions[key].holdings.values()}
        assert projection.problems == () and projection.holdings == stored
        assert holding_differences(projection.holdings, stored) == []
    assert held(state) == {"A": (1, {"O1": 1}), "B": (1, {"O1": 1})}
    drifted = {"A": (1, 1), "B": (2, 1)}
    assert holding_differences(
        project(e for e in entries if e.location == "WH1").holdings, drifted
    ) == ["holding B: ledger (1, 1), position (2, 1) (on_hand, picked)"]
    # As of a moment before anything happened, nothing was held.
    before = entries[0].occurred_at - timedelta(seconds=1)
    assert holdings_as_of([e for e in entries if e.location == "WH1"], before)[1] == {}
    assert holdings_as_of([e for e in entries if e.location == "WH2"], entries[-1].occurred_at)[
        1
    ] == {"B": (2, 0)}


# -- lot expiry ---------------------------------------------------------------------

# Lot SOON expires on 2026-12-15; the builder's commands occur on 2026-11-23.
ON = "2026-12-15"


def expire(stage: str, day: str, lot: str = "SOON") -> Any:
    return cmd("ExpireLot", lot=lot, stage=stage, occurred_at=f"{day}T08:00:00+00:00")


def test_a_lot_is_reported_within_the_warning_window_once() -> None:
    state = lots()
    early = rejected(state, expire("expiring", "2026-11-14"), Policy(lot_expiring_days=30))
    assert early.code is RejectionCode.LOT_NOT_DUE and "expires on 2026-12-15" in early.message
    command = expire("expiring", "2026-11-15")
    decision = outcome(state, command, Policy(lot_expiring_days=30))
    _, events = event_models(command, decision)
    (warning,) = [e for e in events if isinstance(e, LotExpiring)]
    assert (warning.lot, str(warning.expires_on), warning.on_hand, warning.picked) == (
        "SOON",
        ON,
        4,
        0,
    )
    state.apply(decision)
    assert state.positions[KEY].available == 12  # still available until it expires
    again = rejected(state, expire("expiring", "2026-11-16"))
    assert again.code is RejectionCode.LOT_NOT_DUE and "reported already" in again.message


def test_an_expired_lot_is_not_available_and_emits_lot_expired() -> None:
    state = run(
        lots(),
        cmd("ConfigureStockItem", low_stock_threshold=9),
        cmd("PickStock", quantity=1, order_ref="O1"),  # from SOON: 3 of it stay free
    )
    assert rejected(state, expire("expired", ON)).code is RejectionCode.LOT_NOT_DUE
    command = expire("expired", "2026-12-16")
    decision = outcome(state, command)
    _, events = event_models(command, decision)
    kinds = {e.type for e in events}
    assert kinds == {"StockChanged", "LotExpired", "LowStock"}  # 11 -> 8, below 9
    state.apply(decision)
    p = state.positions[KEY]
    assert (p.on_hand, p.picked, p.expired, p.available) == (12, 1, 3, 8)
    assert rejected(state, expire("expired", "2026-12-17")).code is RejectionCode.LOT_NOT_DUE
    # The picked unit still ships; the expired free ones are never picked or moved.
    run(state, cmd("ShipStock", quantity=1, order_ref="O1"))
    refused = rejected(state, cmd("PickStock", quantity=1, order_ref="O2", lot="SOON"))
    assert refused.code is RejectionCode.LOT_EXPIRED
    run(state, cmd("PickStock", quantity=6, order_ref="O2"))  # LATE, then NONE
    assert held(state)["SOON"] == (3, {})
    assert rejected(state, receive(quantity=1, lot="SOON")).code is RejectionCode.LOT_EXPIRED
    # Adjusted out, it leaves on_hand; available does not move.
    run(state, cmd("AdjustInventory", delta=-3, reason="DAMAGE", lot="SOON"))
    p = state.positions[KEY]
    assert ("SOON" in p.holdings, p.on_hand, p.available) == (False, 8, 2)


def test_reservations_beyond_the_unexpired_stock_become_back_orders() -> None:
    state = run(
        lots(),  # 12 on hand: SOON 4, LATE 5, NONE 3
        cmd("ReserveStock", reservation_id="R1", quantity=5, order_ref="O1"),
        cmd("ReserveStock", reservation_id="R2", quantity=6, order_ref="O2"),
    )
    run(state, expire("expired", "2026-12-16"))  # 8 unexpired for 11 reserved
    p = state.positions[KEY]
    assert (p.reserved, p.back_ordered, p.available) == (8, 3, 0)
    # The newest reservation waits first.
    assert (p.reservations["R1"].quantity, p.reservations["R2"].back_ordered) == (5, 3)
    run(state, receive(quantity=2, lot="NEW"))  # arrival fills back orders again
    assert state.positions[KEY].back_ordered == 1


async def test_the_sweeper_reports_then_expires_each_lot_once() -> None:
    db = FakeDatabase()
    now = [datetime(2026, 11, 23, 9, tzinfo=UTC)]
    service = CommandBatchService(lambda: FakeUnitOfWork(db), Topics(), lambda exc: False)
    sweeper = LotExpiry(
        lambda: FakeUnitOfWork(db),
        service,
        clock=lambda: now[0],
        is_transient=lambda exc: False,
        expiring_days=30,
    )
    setup_state = lots()
    db.state = setup_state
    assert (await sweeper.sweep()).applied == 1  # SOON is within 30 days: reported
    assert (await sweeper.sweep()).applied == 0
    now[0] = datetime(2026, 12, 16, 0, 1, tzinfo=UTC)
    assert (await sweeper.sweep()).applied == 1  # SOON expired
    assert (await sweeper.sweep()).applied == 0
    kinds = [m.headers for m in db.outbox if m.topic.endswith("stock.lots.v1")]
    assert [h for headers in kinds for h in headers if h[0] == "type"] == [
        ("type", b"LotExpiring"),
        ("type", b"LotExpired"),
    ]


def test_a_count_of_zero_empties_a_serialised_position_without_naming_serials() -> None:
    state = run(item("serial"), receive(["S1", "S2"]), cmd("PickStock", quantity=1, order_ref="O1"))
    run(
        state, cmd("AdjustInventory", counted_quantity=1, delta=..., reason="COUNT", serials=["S1"])
    )
    assert serials_of(state) == ["S1"]  # S1 was picked; S2 was not found
    refused = rejected(state, cmd("AdjustInventory", counted_quantity=0, delta=..., reason="COUNT"))
    assert refused.code is RejectionCode.INSUFFICIENT_ON_HAND  # S1 is picked
    run(state, cmd("ShipStock", quantity=1, order_ref="O1", serials=["S1"]))
    run(state, receive(["S5", "S6"]))
    run(state, cmd("AdjustInventory", counted_quantity=0, delta=..., reason="COUNT"))
    assert serials_of(state) == [] and state.positions[KEY].on_hand == 0


def test_an_expired_lot_may_be_taken_back_from_its_purchase_order() -> None:
    state = run(item("lot"), receive(quantity=5, lot="OLD", expires_on="2026-11-01"))
    run(state, expire("expired", "2026-11-23", lot="OLD"))
    assert state.positions[KEY].available == 0
    run(state, cmd("UnreceivePOItem", po_number="P-WH1", quantity=2, lot="OLD"))
    assert (state.positions[KEY].on_hand, state.positions[KEY].expired) == (3, 3)
