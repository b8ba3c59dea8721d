"""What the typed client puts on the wire: the contract's key and only the fields set."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from stockworker.client import (
    EncodedCommand,
    StockClient,
    command_bytes,
    command_key,
    encode_command,
)
from stockworker.contract.commands import AnyCommand, Command
from stockworker.domain.decoding import decode_command
from tests.support.builders import _DEFAULTS, command

_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


@pytest.mark.parametrize("type_", sorted(_DEFAULTS))
def test_every_command_is_keyed_as_the_contract_says_and_reads_back_the_same(
    type_: str,
) -> None:
    body = command(type_, sku="SKU-Ø", location="WH1")
    model = _COMMAND.validate_python(body)
    expected_key = body["code"] if type_ == "ConfigureLocation" else body["sku"]
    assert command_key(model) == expected_key.encode()
    sent = command_bytes(model)
    assert decode_command(sent) == model  # what the worker reads is what was built
    # Encoded ahead of time: the same key and bytes, and the id to await its result by.
    assert encode_command(model) == EncodedCommand(model.command_id, command_key(model), sent)


def test_optional_fields_left_out_are_not_sent_as_null() -> None:
    model = _COMMAND.validate_python(command("ReserveStock", quantity=2))
    sent = json.loads(command_bytes(model))
    assert "expires_at" not in sent and "expected_version" not in sent
    assert sent["type"] == "ReserveStock" and sent["quantity"] == 2


def test_money_goes_as_an_exact_decimal_string_without_exponent() -> None:
    model = _COMMAND.validate_python(command("ReceivePOItem", unit_cost=Decimal("1E+1")))
    assert json.loads(command_bytes(model))["unit_cost"] == "10"  # str() would give 1E+1
    model = _COMMAND.validate_python(command("ReceivePOItem", unit_cost="0.000001"))
    sent = command_bytes(model)
    assert json.loads(sent)["unit_cost"] == "0.000001"
    assert decode_command(sent) == model


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"linger_ms": -1}, "linger_ms -1 is out of range: between 0 and 60000"),
        ({"linger_ms": 60_001}, "linger_ms 60001 is out of range"),
        ({"linger_ms": True}, "linger_ms True is out of range"),
        ({"max_batch_size": 1_023}, "max_batch_size 1023 is out of range: between 1024 and"),
        ({"max_batch_size": 100_000_001}, "max_batch_size 100000001 is out of range"),
    ],
)
def test_producer_options_out_of_range_are_refused_in_one_line(
    options: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error) as refused:
        StockClient("localhost:9092", **options)
    assert "\n" not in str(refused.value)


async def test_sending_outside_async_with_says_how_to_use_the_client() -> None:
    client = StockClient("localhost:9092", linger_ms=5, max_batch_size=512 * 1024)
    model = _COMMAND.validate_python(command("AdjustInventory"))
    with pytest.raises(RuntimeError, match="async with StockClient"):
        await client.send(model)
    with pytest.raises(RuntimeError, match="async with StockClient"):
        await client.send_many([encode_command(model)])
