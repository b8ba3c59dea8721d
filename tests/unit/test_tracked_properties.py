"""Random sequences of commands about tracked items (one by serial number, one by lot,
beside an untracked one) at two locations, through the pure domain and the independent
reference model: after every step both accept or refuse alike (and refuse a rule of
tracked stock with the same code), the invariants hold, and every position holds the
same serial numbers and lots, picked for the same orders, with the same expiry dates.

Commands are drawn with an eye on the reference model's state (serials that are free,
picked for an order, in stock elsewhere; lots held), so most of them meet real stock;
the rest name what is not there, too many or too few, or nothing at all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.domain.decide import Policy, decide
from stockworker.domain.outcome import Outcome, Rejection
from stockworker.domain.state import StockState
from tests.support.builders import command
from tests.support.reference import ReferenceModel, RefPosition, observed

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)

SERIAL, LOT, PLAIN = "SER", "LOT", "PLAIN"
LOCATIONS = ("L1", "L2")
ORDERS = ("O1", "O2")
RESERVATIONS = ("R1", "R2")
# "S10" sorts before "S2": the lowest serial is the lowest string.
SERIALS = tuple(f"S{n}" for n in range(1, 13))
LOTS = ("LA", "LB", "LC", "LN")
# Few dates, so lots often tie on expiry and go by arrival, then by name.
DATES = ("2027-01-01", "2027-02-01")

# When the lot sweep runs (lots are reported 30 days ahead, expire the day after their
# date, in UTC): too early for both dates; DATES[0] close; DATES[0] expired and DATES[1]
# close (also written at -02:00, the day before locally); both expired.
SWEEPS = (
    "2026-11-23T10:00:00+00:00",
    "2026-12-20T12:00:00+00:00",
    "2027-01-02T00:30:00+00:00",
    "2027-01-01T23:30:00-02:00",
    "2027-02-02T10:00:00+00:00",
)
STAGES = ("expiring", "expired", "expired")

locations = st.sampled_from(LOCATIONS)
orders = st.sampled_from(ORDERS)
po_lines = st.tuples(st.sampled_from(["P1", "P2"]), st.integers(1, 2))
# expires_on: a date, the same date again (lots repeat), or none given.
expiries = st.sampled_from([*DATES, None])


def setup() -> list[dict[str, Any]]:
    return [
        command("ConfigureLocation", code="L1", name="L1"),
        command("ConfigureLocation", code="L2", name="L2"),
        command("ConfigureItem", sku=SERIAL, name="Serialised", tracking="serial",
                units={"PAIR": 2}),
        command("ConfigureItem", sku=LOT, name="In lots", tracking="lot"),
        command("ReceivePOItem", sku=SERIAL, location="L1", po_number="P0", po_line=1,
                quantity=4, unit_cost="2", serials=["S4", "S2", "S11", "S1"]),
        # At L1, FEFO is LC, LA (same date, LC came first), LB, then LN (no date).
        command("ReceivePOItem", sku=LOT, location="L1", po_number="P0", po_line=2,
                quantity=5, unit_cost="3", lot="LB", expires_on=DATES[1]),
        command("ReceivePOItem", sku=LOT, location="L1", po_number="P0", po_line=3,
                quantity=3, unit_cost="3", lot="LN"),
        command("ReceivePOItem", sku=LOT, location="L1", po_number="P0", po_line=4,
                quantity=2, unit_cost="3", lot="LC", expires_on=DATES[0]),
        command("ReceivePOItem", sku=LOT, location="L1", po_number="P0", po_line=5,
                quantity=2, unit_cost="3", lot="LA", expires_on=DATES[0]),
        command("ReceivePOItem", sku=LOT, location="L2", po_number="P0", po_line=6,
                quantity=4, unit_cost="3", lot="LB", expires_on=DATES[1]),
        command("ReceivePOItem", sku=PLAIN, location="L1", po_number="P0", po_line=7,
                quantity=6, unit_cost="1"),
    ]  # fmt: skip


def _at(reference: ReferenceModel, sku: str, location: str) -> RefPosition:
    return reference.positions.get((sku, location)) or RefPosition()


def _often(draw: st.DrawFn, odds: int) -> bool:
    """True `odds` times out of `odds` + 1."""
    roll: int = draw(st.integers(0, odds))
    return roll != 0


def _order(draw: st.DrawFn, here: RefPosition) -> str:
    """Mostly an order with something picked here (so unpicks and shipments can work)."""
    busy = sorted(o for o, q in here.picks.items() if q)
    if busy and _often(draw, 3):
        return draw(st.sampled_from(busy))
    return draw(orders)


def _received_line(
    draw: st.DrawFn, reference: ReferenceModel, sku: str, location: str
) -> tuple[str, int]:
    """Mostly a purchase-order line that received stock here; sometimes any."""
    received = sorted(
        k for k, line in reference.lines.items()
        if (line.sku, line.location) == (sku, location) and line.received
    )  # fmt: skip
    if received and _often(draw, 4):
        return draw(st.sampled_from(received))
    return draw(st.sampled_from([("P0", 1), ("P1", 1), ("P1", 2), ("P2", 2)]))


def _some(
    draw: st.DrawFn, likely: list[str], pool: tuple[str, ...] = SERIALS, most: int = 3
) -> list[str]:
    """A few distinct serial numbers, mostly from `likely` (those that fit the command)."""
    if likely and _often(draw, 4):
        return draw(st.lists(st.sampled_from(sorted(likely)), min_size=1, max_size=most,
                             unique=True))  # fmt: skip
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=most, unique=True))


def _count_of(draw: st.DrawFn, serials: list[str]) -> int:
    """Mostly as many as named; sometimes one more or one fewer (SERIAL_COUNT_MISMATCH)."""
    n = len(serials)
    return draw(st.sampled_from([n, n, n, n, n + 1, max(n - 1, 1)]))


def _naming(draw: st.DrawFn, body: dict[str, Any], names: dict[str, Any]) -> dict[str, Any]:
    """`body` naming `names` mostly; sometimes nothing, or the other kind of name."""
    how = draw(st.sampled_from(["named"] * 8 + ["nothing", "other"]))
    if how == "nothing":
        return body
    if how == "other":
        other = {"lot": "LA"} if "serials" in names else {"serials": ["S1"]}
        return {**body, **other}
    return {**body, **names}


@st.composite
def serial_commands(draw: st.DrawFn, reference: ReferenceModel) -> dict[str, Any]:
    loc = draw(locations)
    here = _at(reference, SERIAL, loc)
    free = [s for s, o in here.serials.items() if o is None]
    order = _order(draw, here)
    picked = [s for s, o in here.serials.items() if o == order]
    anywhere = {s for p in (_at(reference, SERIAL, x) for x in LOCATIONS) for s in p.serials}
    fresh = [s for s in SERIALS if s not in anywhere]
    at = {"sku": SERIAL, "location": loc}
    kind = draw(st.sampled_from([
        "receive", "receive", "unreceive", "pick", "pick", "pick_named", "unpick", "ship",
        "ship", "transfer", "adjust_up", "adjust_down", "count", "count", "reserve", "release",
    ]))  # fmt: skip
    if kind in ("receive", "adjust_up"):
        serials = _some(draw, fresh)
        quantity = _count_of(draw, serials)
        if kind == "receive":
            po, line = draw(po_lines)
            body = command("ReceivePOItem", **at, po_number=po, po_line=line,
                           quantity=quantity, unit_cost="2")  # fmt: skip
        else:
            body = command("AdjustInventory", **at, delta=quantity, reason="FOUND")
        if quantity % 2 == 0 and not _often(draw, 3):
            body = {**body, "unit": "PAIR", ("quantity" if "quantity" in body else "delta"):
                    quantity // 2}  # fmt: skip
        return _naming(draw, body, {"serials": serials})
    # Sometimes any unit held here: one picked (SERIAL_NOT_AVAILABLE / SERIAL_NOT_PICKED).
    mine = sorted(here.serials)
    if kind in ("unreceive", "adjust_down", "transfer"):
        serials = _some(draw, free if _often(draw, 4) else mine)
        quantity = _count_of(draw, serials)
        if kind == "unreceive":
            po, line = _received_line(draw, reference, SERIAL, loc)
            body = command("UnreceivePOItem", **at, po_number=po, po_line=line, quantity=quantity)
        elif kind == "adjust_down":
            body = command("AdjustInventory", **at, delta=-quantity, reason="DAMAGE")
        else:
            other = LOCATIONS[1 - LOCATIONS.index(loc)]
            body = command("TransferStock", sku=SERIAL, from_location=loc, to_location=other,
                           quantity=quantity)  # fmt: skip
        return _naming(draw, body, {"serials": serials})
    if kind == "pick":  # the worker chooses
        body = command("PickStock", **at, quantity=draw(st.integers(1, 3)), order_ref=order,
                       reservation_id=draw(st.sampled_from([..., ..., *RESERVATIONS])))  # fmt: skip
        return body
    if kind == "pick_named":
        serials = _some(draw, free if _often(draw, 3) else mine)
        body = command("PickStock", **at, quantity=_count_of(draw, serials), order_ref=order)
        return {**body, "serials": serials}
    if kind in ("unpick", "ship"):
        serials = _some(draw, picked if _often(draw, 4) else mine, most=2)
        body = command("UnpickStock" if kind == "unpick" else "ShipStock", **at,
                       quantity=_count_of(draw, serials), order_ref=order)  # fmt: skip
        return _naming(draw, body, {"serials": serials})
    if kind == "count":
        held = sorted(here.serials)
        kept = draw(st.lists(st.sampled_from(held), unique=True)) if held else []
        # Often every picked unit is found; new ones may turn up (some in stock elsewhere).
        if _often(draw, 1):
            kept = sorted(set(kept) | {s for s in held if here.serials[s] is not None})
        found = kept + draw(st.lists(st.sampled_from(SERIALS), max_size=2, unique=True))
        found = list(dict.fromkeys(found))
        if not found:  # nothing found: a count of 0, which may leave the serials out
            body = command("AdjustInventory", **at, delta=..., counted_quantity=0, reason="COUNT")
            return (
                body if _often(draw, 1) else {**body, "serials": [draw(st.sampled_from(SERIALS))]}
            )
        body = command("AdjustInventory", **at, delta=..., counted_quantity=_count_of(draw, found),
                       reason="COUNT")  # fmt: skip
        return _naming(draw, body, {"serials": found})
    return _reservation(draw, kind, at, order)


def _reservation(draw: st.DrawFn, kind: str, at: dict[str, str], order: str) -> dict[str, Any]:
    rid = draw(st.sampled_from(RESERVATIONS))
    if kind == "reserve":
        return command("ReserveStock", **at, reservation_id=rid, order_ref=order,
                       quantity=draw(st.integers(1, 3)),
                       allow_backorder=draw(st.booleans()))  # fmt: skip
    return command("ReleaseReservation", **at, reservation_id=rid)


@st.composite
def lot_commands(draw: st.DrawFn, reference: ReferenceModel) -> dict[str, Any]:
    loc = draw(locations)
    here = _at(reference, LOT, loc)
    order = _order(draw, here)
    at = {"sku": LOT, "location": loc}
    kind = draw(st.sampled_from([
        "receive", "receive", "unreceive", "pick", "pick", "unpick", "ship", "ship", "transfer",
        "transfer", "adjust", "count", "reserve", "release", "expire", "expire",
    ]))  # fmt: skip
    # Mostly a lot held here (one picked for the order when giving back); sometimes any.
    likely = sorted(
        name for name, held in here.lots.items()
        if (held.picks[order] if kind in ("unpick", "ship") else held.quantity)
    )  # fmt: skip
    lot = draw(st.sampled_from(likely if likely and _often(draw, 3) else LOTS))
    most = here.picks[order] if kind in ("unpick", "ship") else 5
    quantity = draw(st.integers(1, max(most, 1)))
    named = draw(st.booleans())  # for the commands that may leave the choice to the worker
    dated: dict[str, Any] = {}
    expires = draw(expiries)
    if expires is not None:
        dated = {"expires_on": expires}
    if kind == "receive":
        po, line = draw(po_lines)
        body = command("ReceivePOItem", **at, po_number=po, po_line=line, quantity=quantity,
                       unit_cost=draw(st.sampled_from(["1", "2.5"])))  # fmt: skip
        return _naming(draw, body, {"lot": lot, **dated})
    if kind == "unreceive":
        po, line = _received_line(draw, reference, LOT, loc)
        body = command("UnreceivePOItem", **at, po_number=po, po_line=line, quantity=quantity)
        return _naming(draw, body, {"lot": lot})
    if kind in ("pick", "unpick", "ship"):
        type_ = {"pick": "PickStock", "unpick": "UnpickStock", "ship": "ShipStock"}[kind]
        body = command(type_, **at, quantity=quantity, order_ref=order)
        if kind == "pick":
            body["reservation_id"] = draw(st.sampled_from([..., ..., *RESERVATIONS]))
            body = {k: v for k, v in body.items() if v is not ...}
        return _naming(draw, body, {"lot": lot}) if named else body
    if kind == "transfer":
        other = LOCATIONS[1 - LOCATIONS.index(loc)]
        body = command("TransferStock", sku=LOT, from_location=loc, to_location=other,
                       quantity=quantity)  # fmt: skip
        return _naming(draw, body, {"lot": lot}) if named else body
    if kind == "adjust":
        delta = draw(st.sampled_from([-3, -1, 1, 2, 4]))
        body = command("AdjustInventory", **at, delta=delta, reason="CORRECTION")
        return _naming(draw, body, {"lot": lot, **(dated if delta > 0 else {})})
    if kind == "count":
        body = command("AdjustInventory", **at, delta=..., reason="COUNT",
                       counted_quantity=draw(st.integers(0, 7)))  # fmt: skip
        return _naming(draw, body, {"lot": lot, **dated})
    if kind == "expire":  # the worker's lot sweep, at some moment
        return {
            **command("ExpireLot", **at, lot=lot, stage=draw(st.sampled_from(STAGES))),
            "occurred_at": draw(st.sampled_from(SWEEPS)),
        }
    return _reservation(draw, kind, at, order)


@st.composite
def other_commands(draw: st.DrawFn, reference: ReferenceModel) -> dict[str, Any]:
    """The untracked item (sometimes naming serials or a lot), and tracking changes."""
    loc = draw(locations)
    at = {"sku": PLAIN, "location": loc}
    kind = draw(st.sampled_from(["receive", "pick", "ship", "adjust", "named", "tracking"]))
    if kind == "receive":
        return command("ReceivePOItem", **at, po_number="P9", po_line=1,
                       quantity=draw(st.integers(1, 4)), unit_cost="1")  # fmt: skip
    if kind in ("pick", "ship"):
        return command("PickStock" if kind == "pick" else "ShipStock", **at,
                       quantity=draw(st.integers(1, 3)), order_ref=draw(orders))  # fmt: skip
    if kind == "adjust":
        return command("AdjustInventory", **at, delta=draw(st.sampled_from([-2, 1])),
                       reason="CORRECTION")  # fmt: skip
    if kind == "named":
        choices: list[dict[str, Any]] = [{"serials": ["S1"]}, {"lot": "LA"}]
        names = draw(st.sampled_from(choices))
        return {**command("AdjustInventory", **at, delta=1, reason="FOUND"), **names}
    # Refused while the item holds stock; accepted once it holds none (or unchanged).
    return command("ConfigureItem", sku=draw(st.sampled_from([SERIAL, LOT, PLAIN])), name=...,
                   tracking=draw(st.sampled_from(["none", "serial", "lot"])))  # fmt: skip


def tracked_commands(reference: ReferenceModel) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        serial_commands(reference),
        serial_commands(reference),
        lot_commands(reference),
        lot_commands(reference),
        other_commands(reference),
    )


def _step(state: StockState, reference: ReferenceModel, body: dict[str, Any]) -> None:
    cmd = _adapter.validate_python(body)
    decision = decide(state, cmd, Policy())
    expected = reference.apply(body)
    assert isinstance(decision, Outcome) == expected, (body, decision)
    code = reference.refusals.get(body["command_id"])
    if isinstance(decision, Rejection) and code is not None:
        assert decision.code.value == code, (body, decision)
    if isinstance(decision, Outcome):
        state.apply(decision)
    for p in state.positions.values():
        p.check_invariants()
        item = state.items.get(p.sku)
        if item is not None and item.tracking != "none":
            p.check_holdings()
        else:
            assert not p.holdings, p
    assert observed(state.positions.values()) == reference.snapshot()


def _agree(bodies: list[dict[str, Any]]) -> ReferenceModel:
    state, reference = StockState(), ReferenceModel()
    for body in setup() + bodies:
        _step(state, reference, body)
    return reference


def _picks(reference: ReferenceModel, sku: str, location: str) -> dict[str, dict[str, int]]:
    held = reference.snapshot()[sku, location][-1]
    return {name: picks for name, (_, _, picks, _, _) in held.items() if picks}


def test_choices_tie_on_expiry_then_go_by_arrival_then_by_name() -> None:
    """LC and LA expire together at L1 and LC came first; moved to L2 in one transfer
    they arrive together, and go by name there."""
    lot = {"sku": LOT, "location": "L1"}
    reference = _agree([
        command("PickStock", **lot, quantity=1, order_ref="O1"),
        command("TransferStock", sku=LOT, from_location="L1", to_location="L2", quantity=2),
        command("PickStock", **{**lot, "location": "L2"}, quantity=1, order_ref="O2"),
        command("PickStock", sku=SERIAL, location="L1", quantity=2, order_ref="O1"),
    ])  # fmt: skip
    assert _picks(reference, LOT, "L1") == {"LC": {"O1": 1}}
    # LC's free unit and one of LA arrive at L2 together, with the same date: LA first.
    assert _picks(reference, LOT, "L2") == {"LA": {"O2": 1}}
    assert _picks(reference, SERIAL, "L1") == {"S1": {"O1": 1}, "S11": {"O1": 1}}


def test_refusals_of_tracked_stock_change_nothing() -> None:
    at = {"sku": SERIAL, "location": "L2"}
    reference = _agree([
        # S2 is at L1: refused at L2, S7 with it.
        command("ReceivePOItem", **at, quantity=2, unit_cost="1", serials=["S7", "S2"]),
        command("AdjustInventory", **at, delta=2, reason="FOUND", serials=["S7"]),
        command("AdjustInventory", **at, delta=1, reason="FOUND", lot="LA"),
        command("TransferStock", sku=SERIAL, from_location="L1", to_location="L2", quantity=1),
        command("ReceivePOItem", sku=LOT, location="L1", quantity=1, unit_cost="1", lot="LB",
                expires_on=DATES[0]),
        command("ConfigureItem", sku=LOT, name=..., tracking="serial"),
        # A count must name the units picked (S1, for O1).
        command("PickStock", sku=SERIAL, location="L1", quantity=1, order_ref="O1"),
        command("AdjustInventory", sku=SERIAL, location="L1", counted_quantity=3, delta=...,
                reason="COUNT", serials=["S2", "S4", "S11"]),
        command("ShipStock", sku=SERIAL, location="L1", quantity=1, order_ref="O1",
                serials=["S2"]),
    ])  # fmt: skip
    assert [
        reference.refusals.get(body_id) for body_id, ok in reference.outcomes.items() if not ok
    ] == [
        "SERIAL_IN_STOCK",
        "SERIAL_COUNT_MISMATCH",
        "NOT_TRACKED",
        "SERIALS_REQUIRED",
        "LOT_EXPIRY_MISMATCH",
        None,  # TRACKING_CHANGE_WITH_STOCK, a rule of the catalogue
        "SERIAL_NOT_AVAILABLE",
        "SERIAL_NOT_PICKED",
    ]
    assert (SERIAL, "L2") not in reference.positions


@settings(max_examples=200)
@given(st.data())
def test_tracked_stock_agrees_with_the_reference_model(data: st.DataObject) -> None:
    state, reference = StockState(), ReferenceModel()
    for body in setup():
        _step(state, reference, body)
    for _ in range(data.draw(st.integers(15, 45), label="steps")):
        _step(state, reference, data.draw(tracked_commands(reference)))


def test_expired_lots_stay_on_hand_but_are_not_available() -> None:
    at = {"sku": LOT, "location": "L1"}
    expired_sweep = {"stage": "expired", "occurred_at": SWEEPS[2]}
    reference = _agree([
        command("PickStock", **at, quantity=1, order_ref="O1"),  # one of LC
        command("ReserveStock", **at, reservation_id="R1", quantity=6, order_ref="O2"),
        command("ReserveStock", **at, reservation_id="R2", quantity=4, order_ref="O2"),
        command("ExpireLot", **at, lot="LC", **expired_sweep),
        # LA's 2 free units expire: R2, the newest, waits for 2 again.
        command("ExpireLot", **at, lot="LA", **expired_sweep),
        command("PickStock", **at, quantity=1, order_ref="O2", reservation_id="R1", lot="LA"),
        command("PickStock", **at, quantity=2, order_ref="O2", reservation_id="R1"),  # LB
        # LC's picked unit comes back, expired: it covers no reservation.
        command("UnpickStock", **at, quantity=1, order_ref="O1"),
        command("ReceivePOItem", **at, po_number="P1", quantity=1, unit_cost="1", lot="LA"),
        command("ReleaseReservation", **at, reservation_id="R1"),
        command("TransferStock", sku=LOT, from_location="L1", to_location="L2", quantity=1,
                lot="LC"),
        command("TransferStock", sku=LOT, from_location="L1", to_location="L2", quantity=2),
        command("AdjustInventory", **at, delta=-1, reason="DAMAGE", lot="LB"),
        command("AdjustInventory", **at, delta=-2, reason="DAMAGE", lot="LA"),
        command("UnreceivePOItem", **at, po_number="P0", po_line=4, quantity=1, lot="LC"),
        command("ExpireLot", **at, lot="LB", stage="expiring", occurred_at=SWEEPS[2]),
        command("ExpireLot", **at, lot="LB", stage="expiring", occurred_at=SWEEPS[4]),
    ])  # fmt: skip
    assert [
        reference.refusals.get(body_id) for body_id, ok in reference.outcomes.items() if not ok
    ] == ["LOT_EXPIRED", "LOT_EXPIRED", "LOT_EXPIRED", "INSUFFICIENT_AVAILABLE", None]
    p = reference.positions[LOT, "L1"]
    assert {name: (lot.quantity, lot.expired) for name, lot in p.lots.items()} == {
        "LB": (3, False),
        "LN": (3, False),
        "LC": (1, True),
    }
    assert {rid: (r.held, r.waiting) for rid, r in p.reservations.items()} == {"R2": (4, 0)}
