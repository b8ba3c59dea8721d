from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockworker.contract.codes import DeadLetterCode
from stockworker.contract.commands import COMMAND_TYPE_NAMES, COMMAND_TYPES, PickStock
from stockworker.domain.decoding import (
    MAX_FIELD_ERRORS,
    InvalidCommand,
    Undecodable,
    decode_command,
)
from tests.support.builders import command, encode


def test_a_valid_command_decodes() -> None:
    body = command("PickStock", quantity=3)
    decoded = decode_command(encode(body))
    assert isinstance(decoded, PickStock)
    assert str(decoded.command_id) == body["command_id"]
    assert decoded.quantity == 3


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, DeadLetterCode.EMPTY_MESSAGE),
        (b"", DeadLetterCode.EMPTY_MESSAGE),
        (b"\xff\xfe{}", DeadLetterCode.NOT_UTF8),
        (b"{not json", DeadLetterCode.NOT_JSON),
        (b"[1, 2]", DeadLetterCode.NOT_AN_OBJECT),
        (b'"text"', DeadLetterCode.NOT_AN_OBJECT),
        (b'{"type": "PickStock"}', DeadLetterCode.MISSING_COMMAND_ID),
        (b'{"type": "PickStock", "command_id": "nope"}', DeadLetterCode.INVALID_COMMAND_ID),
        (b'{"type": "PickStock", "command_id": 12}', DeadLetterCode.INVALID_COMMAND_ID),
        (b'{"command_id": "6a1f3c3e-8f7e-4a4e-9c61-0c1d3f7b8a11"}', DeadLetterCode.MISSING_TYPE),
        (
            b'{"type": "Teleport", "command_id": "6a1f3c3e-8f7e-4a4e-9c61-0c1d3f7b8a11"}',
            DeadLetterCode.UNKNOWN_TYPE,
        ),
        (b"[" * 5000 + b"]" * 5000, DeadLetterCode.TOO_DEEP),
    ],
)
def test_uncorrelatable_input_is_undecodable_with_a_specific_code(
    raw: bytes | None, code: DeadLetterCode
) -> None:
    decoded = decode_command(raw)
    assert isinstance(decoded, Undecodable)
    assert decoded.code is code
    assert decoded.message


def test_oversized_messages_are_refused_before_parsing() -> None:
    decoded = decode_command(b"{" + b" " * 2000 + b"}", max_bytes=1000)
    assert isinstance(decoded, Undecodable)
    assert decoded.code is DeadLetterCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"quantity": "3"}, "quantity"),
        ({"quantity": 2.5}, "quantity"),
        ({"quantity": 10**15}, "quantity"),
        ({"sku": ""}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"order_ref": ...}, "order_ref"),
        ({"occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_identifiable_commands_with_bad_fields_are_invalid_with_field_errors(
    override: dict[str, Any], field: str
) -> None:
    body = command("PickStock", **override)
    decoded = decode_command(encode(body))
    assert isinstance(decoded, InvalidCommand)
    assert str(decoded.command_id) == body["command_id"]
    assert decoded.command_type == "PickStock"
    assert field in [e.field for e in decoded.field_errors]


def test_adjust_needs_exactly_one_of_delta_or_count() -> None:
    both = decode_command(encode(command("AdjustInventory", delta=1, counted_quantity=3)))
    neither = decode_command(encode(command("AdjustInventory", delta=...)))
    zero = decode_command(encode(command("AdjustInventory", delta=0)))
    for decoded in (both, neither, zero):
        assert isinstance(decoded, InvalidCommand)


def test_bin_longer_than_50_characters_is_invalid() -> None:
    decoded = decode_command(encode(command("ConfigureStockItem", bin="b" * 51)))
    assert isinstance(decoded, InvalidCommand)
    assert decoded.field_errors[0].field == "bin"


def assert_well_formed(decoded: object) -> None:
    """Every outcome says what it is: a reason with a message, or a command with its id."""
    if isinstance(decoded, Undecodable):
        assert decoded.code in DeadLetterCode and decoded.message
    elif isinstance(decoded, InvalidCommand):
        assert decoded.command_type in COMMAND_TYPE_NAMES
        assert decoded.field_errors
        assert all(e.field and e.message and e.code for e in decoded.field_errors)
    else:
        assert isinstance(decoded, COMMAND_TYPES)
        assert isinstance(decoded.command_id, uuid.UUID)


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_outcome_never_an_exception(raw: bytes) -> None:
    decoded = decode_command(raw)
    assert_well_formed(decoded)
    if not raw:
        assert isinstance(decoded, Undecodable) and decoded.code is DeadLetterCode.EMPTY_MESSAGE


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "command_id",
                "sku",
                "location",
                "quantity",
                "order_ref",
                "occurred_at",
                "delta",
            ]
        ),
        json_values,
    )
)
def test_any_json_object_decodes_to_an_outcome(body: dict[str, object]) -> None:
    body.setdefault("command_id", str(uuid.uuid4()))
    decoded = decode_command(json.dumps(body).encode())
    assert_well_formed(decoded)
    command_id = body["command_id"]
    try:
        parsed = uuid.UUID(command_id) if isinstance(command_id, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        expected: object = DeadLetterCode.INVALID_COMMAND_ID
    elif body.get("type") is None:
        expected = DeadLetterCode.MISSING_TYPE
    elif not isinstance(body["type"], str) or body["type"] not in COMMAND_TYPE_NAMES:
        expected = DeadLetterCode.UNKNOWN_TYPE
    else:
        # Identifiable: rejected (or applied) under its own id, never dead-lettered.
        assert not isinstance(decoded, Undecodable)
        assert decoded.command_id == parsed
        return
    assert isinstance(decoded, Undecodable) and decoded.code is expected


def test_the_field_errors_of_a_hostile_command_stay_bounded() -> None:
    body = command("PickStock")
    body.update({f"unknown_{i}": i for i in range(5_000)})
    body["x" * 100_000] = 1
    decoded = decode_command(encode(body))
    assert isinstance(decoded, InvalidCommand)
    assert len(decoded.field_errors) == MAX_FIELD_ERRORS + 1
    assert decoded.field_errors[-1].message == f"{5_001 - MAX_FIELD_ERRORS} more errors not listed"
    long_name = decode_command(encode({**command("PickStock"), "x" * 100_000: 1}))
    assert isinstance(long_name, InvalidCommand)
    [error] = long_name.field_errors
    assert error.field == "x" * 99 + "\u2026"
