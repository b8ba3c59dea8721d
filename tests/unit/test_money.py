"""Money: one definition of `unit_cost` for the model and the published schema, and
value limits that answer every command within the published limits with a result."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import ReceivePOItem
from stockworker.contract.money import MAX_UNIT_COST, UNIT_COST_PATTERN
from stockworker.domain import valuation
from stockworker.domain.decoding import InvalidCommand, decode_command
from stockworker.domain.purchasing import PoLineKey
from stockworker.domain.state import StockState
from stockworker.entrypoints.schemas import expected_schemas
from tests.support.builders import command, encode
from tests.support.domain import KEY, cmd, configured, outcome, rejected, run

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TRILLION = 10**12
LIMIT = 10**18


def _string_patterns(schema: Any) -> list[str]:
    """Every `pattern` of a string branch under `schema`."""
    if isinstance(schema, list):
        return [p for s in schema for p in _string_patterns(s)]
    if not isinstance(schema, dict):
        return []
    own = [schema["pattern"]] if schema.get("type") == "string" and "pattern" in schema else []
    return own + [p for v in schema.values() for p in _string_patterns(v)]


def published_unit_cost_pattern() -> str:
    schema = json.loads((SCHEMAS / "commands" / "ReceivePOItem.json").read_text())
    [pattern] = _string_patterns(schema["properties"]["unit_cost"])
    return pattern


def decoded_unit_cost(raw_value: str) -> Decimal | None:
    """The unit_cost the worker reads from a ReceivePOItem whose unit_cost is the JSON
    text `raw_value`, or None when the command is refused as invalid."""
    body = command("ReceivePOItem", unit_cost="@")
    raw = encode(body).replace(b'"@"', raw_value.encode())
    decoded = decode_command(raw)
    if isinstance(decoded, InvalidCommand):
        assert [e.field for e in decoded.field_errors] == ["unit_cost"], decoded
        return None
    assert isinstance(decoded, ReceivePOItem), decoded
    return decoded.unit_cost


# (decimal string, accepted?)
STRING_CASES = [
    ("0", True),
    ("0.5", True),
    ("12.50", True),
    ("0.000001", True),
    ("999999999999.999999", True),
    ("1000000000000", True),
    ("1000000000000.0", True),
    ("1000000000000.000000", True),
    ("01", True),  # leading zeros: the v1 schema always allowed them
    ("0001000000000000", True),
    ("1e3", False),
    ("1E-2", False),
    (" 5 ", False),
    ("+5", False),
    ("5.", False),
    (".5", False),
    ("9999999999999.999999", False),
    ("1000000000000.000001", False),
    ("1000000000001", False),
    ("0.0000001", False),
    ("1.0000000", False),
    ("-0", False),
    ("-1", False),
    ("", False),
    ("5\n", False),
    ("1_000", False),
    ("1,5", False),
    ("NaN", False),
    ("Infinity", False),
    ("\u0663", False),  # ARABIC-INDIC DIGIT THREE: Decimal() reads it, the schema does not
    ("\uff15", False),  # FULLWIDTH DIGIT FIVE
]


@pytest.mark.parametrize(("text", "accepted"), STRING_CASES)
def test_unit_cost_strings_are_accepted_exactly_when_the_published_pattern_matches(
    text: str, accepted: bool
) -> None:
    # JSON Schema patterns are ECMA-262 and unanchored; the published one anchors itself
    # and uses no construct whose meaning differs between ECMA-262 and Python.
    assert (re.fullmatch(published_unit_cost_pattern(), text) is not None) is accepted
    value = decoded_unit_cost(json.dumps(text))
    assert (value is not None) is accepted
    if value is not None:
        assert value == Decimal(text)


# (JSON number text, the value read, or None when refused)
NUMBER_CASES = [
    ("0", Decimal(0)),
    ("0.0", Decimal(0)),
    ("-0.0", Decimal(0)),
    ("0.1", Decimal("0.1")),
    ("1e3", Decimal(1000)),
    ("1.5E2", Decimal(150)),
    ("0.000001", Decimal("0.000001")),
    ("999999999.999999", Decimal("999999999.999999")),  # 15 significant digits
    ("1000000000000", Decimal(TRILLION)),
    ("1e12", Decimal(TRILLION)),
    ("1000000000000.5", None),
    ("1000000000001", None),
    ("1e13", None),
    ("-1", None),
    ("-0.5", None),
    ("0.0000001", None),
    ("1e-7", None),
    # A double holds about 16 digits: this one arrives as 123456789012.12346, so it
    # is refused rather than read as another amount (send it as a string).
    ("123456789012.123456", None),
    ("12345678901234567890", None),
    ("1e400", None),
    ("NaN", None),
    ("Infinity", None),
    ("true", None),
    ("null", None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_CASES)
def test_unit_cost_json_numbers_are_bounded_like_the_schema(
    text: str, expected: Decimal | None
) -> None:
    value = decoded_unit_cost(text)
    assert value == expected
    if value is not None:
        assert not value.is_signed()  # never a negative zero in events


def test_every_command_publishes_the_one_unit_cost_definition() -> None:
    found = 0
    for name, schema in expected_schemas().items():
        if name.startswith("commands/") and "unit_cost" in schema["properties"]:
            unit_cost = schema["properties"]["unit_cost"]
            assert _string_patterns(unit_cost) == [UNIT_COST_PATTERN], name
            text = json.dumps(unit_cost)
            assert f'"maximum": {MAX_UNIT_COST}' in text and '"minimum": 0' in text, name
            assert "15 significant digits" in text, name  # what JSON Schema cannot say
            found += 1
    assert found == 3  # OrderPOItem, ReceivePOItem, AdjustInventory
    assert published_unit_cost_pattern() == UNIT_COST_PATTERN


# -- value limits ---------------------------------------------------------------------


def test_valuation_is_exact_and_never_raises_at_the_limits() -> None:
    value_of = valuation.value_of
    assert value_of(Decimal(TRILLION), TRILLION) == Decimal(10**24)
    assert value_of(Decimal("999999999999.999999"), 999_999_999_999) == Decimal(
        "999999999998999999000000.000001"
    )
    assert valuation.share(Decimal(10**24), 1, 3) == Decimal("333333333333333333333333.333333")
    assert valuation.share(Decimal(LIMIT), 10**15 - 1, 10**15) == Decimal(LIMIT - 1000)
    assert valuation.average_cost(Decimal(10**24), 7) == Decimal("142857142857142857142857.142857")
    assert valuation.money(Decimal(10**30) + Decimal("0.0000005")) == Decimal(10**30)


@pytest.mark.parametrize(
    "extreme",
    [
        {"type_": "ReceivePOItem", "quantity": TRILLION, "unit_cost": str(TRILLION)},
        {"type_": "AdjustInventory", "delta": TRILLION, "unit_cost": str(TRILLION)},
        {
            "type_": "AdjustInventory",
            "delta": ...,
            "counted_quantity": TRILLION,
            "reason": "COUNT",
            "unit_cost": "999999999999.999999",
        },
    ],
)
def test_stock_value_beyond_the_limit_is_a_rejection_not_an_error(
    extreme: dict[str, Any],
) -> None:
    rejection = rejected(StockState(), cmd(**extreme))
    assert rejection.code is RejectionCode.VALUE_LIMIT
    assert "stock_value of 'SKU-1' at 'WH1' would be" in rejection.message
    assert rejection.message.endswith(f"above the limit of {LIMIT}")


def test_stock_value_may_reach_the_limit_but_not_pass_it() -> None:
    state = run(StockState(), cmd("ReceivePOItem", quantity=10**6, unit_cost=str(TRILLION)))
    assert state.positions[KEY].stock_value == LIMIT
    more = rejected(state, cmd("AdjustInventory", delta=1, reason="FOUND", unit_cost="0.000001"))
    assert more.code is RejectionCode.VALUE_LIMIT
    assert f"would be {LIMIT}.000001, above the limit of {LIMIT}" in more.message
    assert more.current_version == 1
    # Adding stock at no cost, and every outbound movement, still work at the limit.
    run(
        state,
        cmd("AdjustInventory", delta=1, reason="FOUND", unit_cost="0"),
        cmd("PickStock", quantity=3),
        cmd("ShipStock", quantity=3),
    )
    assert state.positions[KEY].on_hand == 10**6 - 2


def test_a_transfer_into_a_position_at_the_value_limit_changes_neither_position() -> None:
    state = run(
        StockState(),
        cmd("ConfigureLocation", code="WH1", name="WH1"),
        cmd("ConfigureLocation", code="WH2", name="WH2"),
        cmd("ReceivePOItem", quantity=10, unit_cost="1"),
        cmd("ReceivePOItem", location="WH2", po_number="P2", quantity=10**6, unit_cost=TRILLION),
    )
    rejection = rejected(state, cmd("TransferStock", quantity=1))
    assert rejection.code is RejectionCode.VALUE_LIMIT and "'WH2'" in rejection.message
    assert state.positions[KEY].on_hand == 10


def test_a_purchase_order_line_cannot_receive_beyond_the_value_limit() -> None:
    state = run(
        StockState(),
        cmd("ReceivePOItem", po_number="U", quantity=10**6, unit_cost=str(TRILLION)),
        cmd("AdjustInventory", delta=..., counted_quantity=0, reason="LOSS"),
    )
    assert state.positions[KEY].stock_value == 0
    rejection = rejected(state, cmd("ReceivePOItem", po_number="U", quantity=1, unit_cost="1"))
    assert rejection.code is RejectionCode.VALUE_LIMIT
    assert rejection.message == (
        f"received_value of purchase-order line 'U'/1 would be {LIMIT + 1}.000000, "
        f"above the limit of {LIMIT}"
    )
    assert state.po_lines[PoLineKey("U", 1)].received_value == LIMIT


def test_a_position_already_above_the_value_limit_can_still_lose_stock() -> None:
    """Rows written before the limit existed: outbound movements are not refused."""
    legacy = configured(on_hand=10, stock_value=Decimal(10**21))
    state = StockState.of([legacy])
    run(
        state,
        cmd("PickStock", quantity=2),
        cmd("ShipStock", quantity=2),
        cmd("AdjustInventory", delta=-1, reason="LOSS"),
    )
    assert state.positions[KEY].stock_value == Decimal(7 * 10**20)
    up = rejected(state, cmd("AdjustInventory", delta=1, reason="FOUND"))
    assert up.code is RejectionCode.VALUE_LIMIT
    assert outcome(state, cmd("AdjustInventory", delta=1, reason="FOUND", unit_cost="0"))
