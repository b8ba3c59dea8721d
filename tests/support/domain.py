"""Helpers for tests of the pure domain: build commands, positions and states, decide."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.domain.decide import Policy, decide
from stockworker.domain.outcome import Outcome, Rejection
from stockworker.domain.position import Position, PositionKey, Reservation
from stockworker.domain.state import StockState
from tests.support.builders import command

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)
KEY = PositionKey("SKU-1", "WH1")


def cmd(type_: str, **fields: Any) -> AnyCommand:
    return _adapter.validate_python(command(type_, **fields))


def configured(**fields: Any) -> Position:
    """An existing position at KEY; `reserved` and `picked` come with a matching holder."""
    defaults: dict[str, Any] = {"sku": KEY.sku, "location": KEY.location, "version": 1}
    defaults["max_quantity"] = 100
    if "picked" in fields:
        defaults["picks"] = {"OTHER": fields["picked"]}
    if "reserved" in fields:
        defaults["reservations"] = {
            "R-OTHER": Reservation("R-OTHER", "OTHER", fields["reserved"], sequence=1)
        }
    return Position(**{**defaults, **fields})


def outcome(
    state: StockState | Position, command: AnyCommand, policy: Policy | None = None
) -> Outcome:
    view = StockState.of([state]) if isinstance(state, Position) else state
    decision = decide(view, command, policy or Policy())
    assert isinstance(decision, Outcome), decision
    return decision


def accepted(state: StockState | Position, command: AnyCommand) -> Position:
    """The first changed position of an accepted command."""
    return outcome(state, command).positions[0].after


def rejected(
    state: StockState | Position, command: AnyCommand, policy: Policy | None = None
) -> Rejection:
    view = StockState.of([state]) if isinstance(state, Position) else state
    decision = decide(view, command, policy or Policy())
    assert isinstance(decision, Rejection), decision
    return decision


def run(state: StockState, *commands: AnyCommand) -> StockState:
    """Apply commands that must all be accepted, in order, to `state`."""
    for c in commands:
        state.apply(outcome(state, c))
    return state
