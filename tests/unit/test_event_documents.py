"""The events the worker publishes are built as documents, not models (for speed): every
document must validate against its published model and serialise to exactly the bytes
the model would give, whatever the command and the state."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.domain.decide import decide
from stockworker.domain.decoding import InvalidCommand, decode_command
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE, EventIds
from stockworker.domain.idempotency import command_fingerprint
from stockworker.domain.outcome import Outcome
from stockworker.domain.outcome_events import outcome_events
from stockworker.domain.state import StockState
from stockworker.service.batch_state import BatchState
from stockworker.service.id_rejections import invalid_command_result, reused_id_result
from stockworker.service.messages import result_message
from stockworker.service.ports import StoredResult
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.events import MODELS, as_model, event_models
from tests.unit.test_domain_properties import commands, large_commands, setup

_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)
# Offsets pydantic writes differently: UTC as Z, others as +hh:mm; with and without µs.
offsets = st.sampled_from(
    ["2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00.250000+05:30", "2026-03-01T07:00:00-04:00"]
)


def _publish_all(bodies: list[dict[str, Any]], occurred_at: str) -> set[str]:
    batch = BatchState(state=StockState(), loaded={}, stored={})
    kinds: set[str] = set()
    for body in [*setup(), *bodies]:
        command = _adapter.validate_python({**body, "occurred_at": occurred_at})
        decision = decide(batch.state, command)
        result, events = event_models(command, decision)  # checks every document
        kinds |= {result.type, *(e.type for e in events)}
        if isinstance(decision, Outcome):
            batch.apply(command, decision)
    return kinds


@settings(max_examples=150)
@given(st.lists(commands, min_size=10, max_size=50), offsets)
def test_every_event_of_any_command_sequence_is_its_models_json(
    bodies: list[dict[str, Any]], occurred_at: str
) -> None:
    _publish_all(bodies, occurred_at)


@settings(max_examples=80)
@given(st.lists(large_commands, min_size=5, max_size=30), offsets)
def test_events_at_the_value_limits_are_their_models_json_too(
    bodies: list[dict[str, Any]], occurred_at: str
) -> None:
    _publish_all(bodies, occurred_at)


def test_a_day_at_one_position_yields_every_kind_of_event_each_its_models_json() -> None:
    day = [
        command("ConfigureStockItem", sku="A", location="L1", low_stock_threshold=5),
        command("ReceivePOItem", sku="A", location="L1", po_number="P9", quantity=8),
        command("PickStock", sku="A", location="L1", quantity=15),  # 10 + 8 - 15: low
        command("PickStock", sku="A", location="L1", quantity=40),  # rejected
        command("ReceivePOItem", sku="A", location="L1", po_number="P9", po_line=2, quantity=9),
        # A lot that expired the day before: reported, then expired.
        command("ConfigureItem", sku="B", tracking="lot"),
        command("AdjustInventory", sku="B", lot="X", expires_on="2026-02-28", delta=3),
        command("ExpireLot", sku="B", lot="X", stage="expiring"),
        command("ExpireLot", sku="B", lot="X", stage="expired"),
    ]
    # Every kind the worker writes; a PositionSnapshot is derived by the relay from a
    # StockChanged (tests/unit/test_subscribers.py).
    assert _publish_all(day, "2026-03-01T12:00:00+00:00") == set(MODELS) - {"PositionSnapshot"}


@given(st.uuids(), st.text(max_size=40))
def test_event_ids_are_uuid5_of_the_command_and_the_kind(command_id: uuid.UUID, kind: str) -> None:
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{kind}")
    assert EventIds(command_id)(kind) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"quantity": -3},
        {"quantity": "5"},
        {"sku": "bad\x00sku"},
        {"occurred_at": "not a time"},
        {"order_ref": "x" * 500, "quantity": 0},
    ],
)
def test_the_rejection_of_an_invalid_command_is_its_models_json(
    overrides: dict[str, Any],
) -> None:
    raw = json.dumps({**command("PickStock"), **overrides}).encode()
    item = decode_command(raw)
    assert isinstance(item, InvalidCommand)
    rejection = as_model(invalid_command_result(item, raw))
    assert rejection.reason_code == "INVALID_COMMAND" and rejection.field_errors


def test_the_refusal_of_a_reused_command_id_is_its_models_json() -> None:
    first = _adapter.validate_python(command("ReceivePOItem", quantity=3))
    accepted, _ = outcome_events(first, decide(StockState(), first))
    prior = StoredResult(first.command_id, result_message(accepted, Topics("t.")))
    again = _adapter.validate_python({**command("PickStock"), "command_id": str(first.command_id)})
    refusal = as_model(reused_id_result(again, prior, command_fingerprint(again)))
    assert refusal.reason_code == "COMMAND_ID_REUSED"
