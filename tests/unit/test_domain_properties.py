"""Random command sequences through the pure domain and the independent reference model:
after every step the invariants hold and both agree."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockworker.domain.commands import AnyCommand, Command
from stockworker.domain.decide import Change, decide
from stockworker.domain.position import Position, PositionKey, new_position
from tests.support.builders import command
from tests.support.reference import ReferenceModel

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)

skus = st.sampled_from(["A", "B"])
orders = st.sampled_from(["O1", "O2", "O3"])
quantities = st.integers(min_value=1, max_value=12)

commands = st.one_of(
    st.builds(lambda s, q: command("ReceivePOItem", sku=s, quantity=q), skus, quantities),
    st.builds(
        lambda s, q, o: command("PickStock", sku=s, quantity=q, order_ref=o),
        skus,
        quantities,
        orders,
    ),
    st.builds(
        lambda s, q, o: command("ShipStock", sku=s, quantity=q, order_ref=o),
        skus,
        quantities,
        orders,
    ),
    st.builds(
        lambda s, d: command("AdjustInventory", sku=s, delta=d, reason="CORRECTION"),
        skus,
        st.integers(-10, 10).filter(bool),
    ),
    st.builds(
        lambda s, c: command(
            "AdjustInventory", sku=s, delta=..., counted_quantity=c, reason="COUNT"
        ),
        skus,
        st.integers(0, 30),
    ),
)


@given(st.lists(commands, max_size=60))
def test_domain_agrees_with_the_reference_model(bodies: list[dict[str, Any]]) -> None:
    reference = ReferenceModel()
    positions: dict[PositionKey, Position] = {}
    for body in bodies:
        cmd = _adapter.validate_python(body)
        key = PositionKey(cmd.sku, cmd.location)
        decision = decide(positions.get(key) or new_position(key), cmd)
        expected = reference.apply(body)
        assert isinstance(decision, Change) == expected, body
        if isinstance(decision, Change):
            decision.after.check_invariants()
            positions[key] = decision.after
        ours = {
            (k.sku, k.location): (p.on_hand, p.picked, p.version, dict(p.picks))
            for k, p in positions.items()
        }
        assert ours == reference.snapshot()
