"""Random sequences of every command through the pure domain and the independent
reference model: after every step the invariants hold and both agree."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.contract.fields import MAX_QUANTITY
from stockworker.domain.decide import Policy, decide
from stockworker.domain.ledger import LedgerEntry, ledger_entry, project
from stockworker.domain.ledger import LedgerQuantities as Quantities
from stockworker.domain.outcome import Outcome
from stockworker.domain.state import StockState
from tests.support.builders import OCCURRED_AT, command
from tests.support.reference import ReferenceModel, observed

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)
T0 = datetime.fromisoformat(OCCURRED_AT)

SKU = "A"
locations = st.sampled_from(["L1", "L2"])
orders = st.sampled_from(["O1", "O2"])
reservation_ids = st.sampled_from(["R1", "R2", "R3"])
quantities = st.integers(min_value=1, max_value=8)
po_lines = st.tuples(st.sampled_from(["P1", "P2"]), st.integers(1, 2))
costs = st.sampled_from(["0", "1.25", "3", "0.333333", "10"])
moments = st.sampled_from([T0 - timedelta(minutes=1), T0, T0 + timedelta(hours=1)])
# Mostly no expected_version, so sequences reach deep states; sometimes a right or wrong one.
mostly_active = st.sampled_from([True, True, True, False])
versions = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 8))


def setup() -> list[dict[str, Any]]:
    """Both locations known and stocked, so random commands mostly meet real state."""
    return [
        command("ConfigureLocation", code="L1", name="L1"),
        command("ConfigureLocation", code="L2", name="L2"),
        command("ReceivePOItem", sku=SKU, location="L1", po_number="P0", po_line=1,
                quantity=10, unit_cost="2"),
        command("ReceivePOItem", sku=SKU, location="L2", po_number="P0", po_line=2,
                quantity=4, unit_cost="3.5"),
    ]  # fmt: skip


def at(moment: datetime) -> str:
    return moment.isoformat()


def _body(type_: str, location: str, expected: int | None, **fields: Any) -> dict[str, Any]:
    return command(
        type_,
        sku=SKU,
        location=location,
        expected_version=... if expected is None else expected,
        **fields,
    )


def _po(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda loc, line, q, c, v: _body(
            type_,
            loc,
            v,
            po_number=line[0],
            po_line=line[1],
            **({"quantity": q} if type_ != "CancelPOItem" else {}),
            **({"unit_cost": c} if type_ in ("OrderPOItem", "ReceivePOItem") else {}),
        ),
        locations,
        po_lines,
        quantities,
        costs,
        versions,
    )


# A setting given, left out (...: kept) or null (reset).
def _setting(values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.one_of(values, values, st.just(...), st.none())


unit_sets = st.sampled_from([..., None, {}, {"BOX": 3}, {"BOX": 5, "CASE": 2}, {"CASE": 4}])
base_commands = st.one_of(
    st.builds(
        lambda loc, lo, hi, t: _body(
            "ConfigureStockItem",
            loc,
            None,
            min_quantity=lo,
            max_quantity=hi,
            low_stock_threshold=t,
        ),
        locations,
        _setting(st.integers(0, 5)),
        _setting(st.integers(0, 10)),
        _setting(st.integers(0, 6)),
    ),
    _po("OrderPOItem"),
    _po("ReceivePOItem"),
    _po("UnreceivePOItem"),
    _po("CancelPOItem"),
    st.builds(
        lambda loc, r, q, o, exp, back, v: _body(
            "ReserveStock",
            loc,
            v,
            reservation_id=r,
            quantity=q,
            order_ref=o,
            expires_at=at(exp + timedelta(minutes=30)) if exp else ...,
            allow_backorder=back,
        ),
        locations,
        reservation_ids,
        quantities,
        orders,
        st.none() | moments,
        st.booleans(),
        versions,
    ),
    st.builds(
        lambda loc, r, q: _body("ReleaseReservation", loc, None, reservation_id=r, quantity=q),
        locations,
        reservation_ids,
        st.none() | quantities,
    ),
    st.builds(
        lambda loc, r, m: {
            **_body("ExpireReservation", loc, None, reservation_id=r),
            "occurred_at": at(m + timedelta(hours=1)),
        },
        locations,
        reservation_ids,
        moments,
    ),
    st.builds(
        lambda loc, q, o, r, v: _body(
            "PickStock", loc, v, quantity=q, order_ref=o, reservation_id=r or ...
        ),
        locations,
        quantities,
        orders,
        st.none() | reservation_ids,
        versions,
    ),
    st.builds(
        lambda t, loc, q, o: _body(t, loc, None, quantity=q, order_ref=o),
        st.sampled_from(["UnpickStock", "ShipStock"]),
        locations,
        quantities,
        orders,
    ),
    st.builds(
        lambda loc, d, c: _body(
            "AdjustInventory", loc, None, delta=d, reason="CORRECTION", unit_cost=c or ...
        ),
        locations,
        st.integers(-6, 6).filter(bool),
        st.none() | costs,
    ),
    st.builds(
        lambda loc, c: _body(
            "AdjustInventory", loc, None, delta=..., counted_quantity=c, reason="COUNT"
        ),
        locations,
        st.integers(0, 15),
    ),
    st.builds(
        lambda src, dst, q, v: {
            **command("TransferStock", sku=SKU, from_location=src, to_location=dst, quantity=q),
            **({"expected_version": v} if v is not None else {}),
        },
        locations,
        locations,
        quantities,
        versions,
    ),
    st.builds(
        lambda code, active: command("ConfigureLocation", code=code, name=code, active=active),
        locations,
        mostly_active,
    ),
    st.builds(
        lambda name, active, units, v: command(
            "ConfigureItem",
            sku=SKU,
            name=name,
            active=active,
            units=units,
            expected_version=... if v is None else v,
        ),
        st.sampled_from(["Item", ...]),
        st.one_of(mostly_active, st.just(...)),
        unit_sets,
        versions,
    ),
)


def _in_unit(body: dict[str, Any], unit: str | None) -> dict[str, Any]:
    """`body` with its quantities given in `unit`, where it has quantities."""
    if unit is None or not any(k in body for k in _AMOUNTS):
        return body
    return {**body, "unit": unit}


# Quantities mostly in the base unit; sometimes in a named unit the item may not have.
commands = st.builds(
    _in_unit, base_commands, st.sampled_from([None, None, None, "EA", "BOX", "CASE"])
)


def _scaled(body: dict[str, Any], factor: int, unit_cost: str) -> dict[str, Any]:
    """`body` with its quantities times `factor` (at most 10^12) and another unit cost."""
    scaled = {
        k: (max(min(v * factor, MAX_QUANTITY), -MAX_QUANTITY) if k in _AMOUNTS and v else v)
        for k, v in body.items()
    }
    return {**scaled, "unit_cost": unit_cost} if "unit_cost" in body else scaled


_AMOUNTS = ("quantity", "delta", "counted_quantity")
# Quantities and unit costs up to their published limits (10^12 each), so stock values
# reach the value limit (8 x 125,000 units at 10^12 is exactly 10^18) and try to pass it;
# on_hand stays far below the quantity limit.
large_commands = st.builds(
    _scaled,
    commands,
    st.sampled_from([1, 125_000, 125_000_000_000]),
    st.sampled_from(["0", "0.000001", "0.333333", "999999.999999", "1000000000000"]),
)


@settings(max_examples=300)
@given(st.lists(commands, min_size=25, max_size=60), st.sampled_from([0, 10]))
def test_domain_agrees_with_the_reference_model(
    bodies: list[dict[str, Any]], tolerance: int
) -> None:
    _agree(bodies, tolerance)


@settings(max_examples=200)
@given(st.lists(large_commands, min_size=10, max_size=40), st.sampled_from([0, 10]))
def test_domain_agrees_with_the_reference_model_up_to_the_value_limits(
    bodies: list[dict[str, Any]], tolerance: int
) -> None:
    """Every command within the published limits gets a decision, never an exception,
    and the value limit is applied as the reference model applies it."""
    _agree(bodies, tolerance)


def _agree(bodies: list[dict[str, Any]], tolerance: int) -> None:
    reference = ReferenceModel(over_receipt_tolerance_percent=tolerance)
    policy = Policy(over_receipt_tolerance_percent=Decimal(tolerance))
    state = StockState()
    for body in setup() + bodies:
        cmd = _adapter.validate_python(body)
        decision = decide(state, cmd, policy)
        expected = reference.apply(body)
        assert isinstance(decision, Outcome) == expected, (body, decision)
        if isinstance(decision, Outcome):
            state.apply(decision)
        for p in state.positions.values():
            p.check_invariants()
        assert observed(state.positions.values()) == reference.snapshot()
        assert {
            k: (line.received_quantity, line.open_quantity, line.status.value)
            for k, line in state.po_lines.items()
        } == reference.line_statuses()
        # on_order is exactly what the position's lines still expect.
        for key, p in state.positions.items():
            lines = [x for x in state.po_lines.values() if (x.sku, x.location) == key]
            assert p.on_order == sum(x.open_quantity for x in lines)


@settings(max_examples=100)
@given(st.lists(commands, min_size=5, max_size=40))
def test_folding_the_ledger_gives_every_position(bodies: list[dict[str, Any]]) -> None:
    state = StockState()
    entries: list[LedgerEntry] = []
    for body in setup() + bodies:
        cmd = _adapter.validate_python(body)
        decision = decide(state, cmd)
        if isinstance(decision, Outcome):
            state.apply(decision)
            entries.extend(
                ledger_entry(c, cmd.command_id, cmd.type, cmd.occurred_at)
                for c in decision.positions
            )
    for key, p in state.positions.items():
        own = [e for e in entries if (e.sku, e.location) == key]
        projection = project(own)
        assert projection.problems == ()
        assert projection.quantities == Quantities(
            p.on_hand, p.reserved, p.picked, p.on_order, p.back_ordered, p.stock_value, p.version
        )
