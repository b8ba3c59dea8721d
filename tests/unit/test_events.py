from __future__ import annotations

from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.contract.events import (
    CommandAccepted,
    CommandRejected,
    LowStock,
    PurchaseOrderLineChanged,
    StockChanged,
    StockReplenished,
)
from stockworker.domain.decide import decide
from stockworker.domain.outcome import Outcome
from stockworker.domain.position import Position
from stockworker.domain.replenishment import suggested_order_quantity
from stockworker.domain.state import StockState
from tests.support.builders import command
from tests.support.events import event_models

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)


def run(position: Position, body: dict[str, object]) -> tuple[Position, list[object]]:
    cmd = _adapter.validate_python(body)
    decision = decide(StockState.of([position]), cmd)
    result, events = event_models(cmd, decision)
    after = decision.positions[0].after if isinstance(decision, Outcome) else position
    return after, [result, *events]


def position(**fields: object) -> Position:
    return Position(sku="SKU-1", location="WH1", **{"version": 1, **fields})  # type: ignore[arg-type]


def test_an_accepted_change_yields_stock_changed_with_deltas_and_quantities() -> None:
    before = position(on_hand=10, on_order=4, max_quantity=100)
    _, (result, changed, po_line) = run(before, command("ReceivePOItem", quantity=3))
    assert isinstance(result, CommandAccepted) and result.version == 2
    assert isinstance(changed, StockChanged)
    assert changed.version == 2
    # An unplanned receipt: nothing was on order for its line, so on_order stays.
    assert (changed.deltas.on_hand, changed.deltas.on_order) == (3, 0)
    assert changed.cause.reason == "UNPLANNED_RECEIPT"
    assert isinstance(po_line, PurchaseOrderLineChanged) and po_line.status == "ReceivedFull"
    assert (changed.quantities.on_hand, changed.quantities.available) == (13, 13)
    assert changed.cause.command_type == "ReceivePOItem"


def test_event_ids_are_the_same_for_the_same_command() -> None:
    body = command("ReceivePOItem", quantity=3)
    _, first = run(position(), body)
    _, second = run(position(), body)
    assert [e.event_id for e in first] == [e.event_id for e in second]  # type: ignore[attr-defined]
    assert len({e.event_id for e in first}) == len(first)  # type: ignore[attr-defined]


def test_a_rejection_yields_only_command_rejected_with_the_current_version() -> None:
    _, events = run(position(on_hand=1, version=7), command("PickStock", quantity=5))
    assert len(events) == 1
    assert isinstance(events[0], CommandRejected)
    assert events[0].reason_code == "INSUFFICIENT_AVAILABLE"
    assert events[0].current_version == 7


def test_low_stock_once_per_crossing_and_replenished_on_recovery() -> None:
    p = position(on_hand=10, low_stock_threshold=5, max_quantity=50, reorder_quantity=8, on_order=2)
    kinds = []
    for body in (
        command("PickStock", quantity=5, order_ref="A"),  # available 5: not low
        command("PickStock", quantity=1, order_ref="A"),  # 4: crosses -> LowStock
        command("PickStock", quantity=1, order_ref="A"),  # 3: still low, nothing
        command("ReceivePOItem", quantity=1),  # 4: still low
        command("ReceivePOItem", quantity=1),  # 5: back -> StockReplenished
        command("ReceivePOItem", quantity=1),  # 6: nothing
    ):
        p, events = run(p, body)
        kinds.append(
            [type(e).__name__ for e in events[2:] if type(e) in (LowStock, StockReplenished)]
        )
    assert kinds == [[], ["LowStock"], [], [], ["StockReplenished"], []]


def test_low_stock_suggests_enough_to_reach_max_counting_on_order() -> None:
    p = position(on_hand=6, low_stock_threshold=5, max_quantity=50, reorder_quantity=8, on_order=4)
    _, events = run(p, command("AdjustInventory", delta=-3, reason="DAMAGE"))
    low = events[2]
    assert isinstance(low, LowStock)
    assert (low.available, low.on_order, low.threshold) == (3, 4, 5)
    assert low.suggested_order_quantity == 50 - 3 - 4


def test_suggested_quantity_is_at_least_the_reorder_quantity() -> None:
    assert suggested_order_quantity(position(on_hand=9, max_quantity=10, reorder_quantity=25)) == 25
    assert suggested_order_quantity(position(on_hand=0, max_quantity=0, reorder_quantity=0)) == 0


def test_raising_the_threshold_above_available_is_a_crossing() -> None:
    p = position(on_hand=3, max_quantity=10)
    p, events = run(p, command("ConfigureStockItem", low_stock_threshold=5, max_quantity=10))
    assert [type(e) for e in events] == [CommandAccepted, StockChanged, LowStock]
    _, events = run(p, command("ConfigureStockItem", low_stock_threshold=0, max_quantity=10))
    assert [type(e) for e in events] == [CommandAccepted, StockChanged, StockReplenished]
