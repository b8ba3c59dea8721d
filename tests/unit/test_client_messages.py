"""What the typed client puts on the wire: the contract's key and only the fields set."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import TypeAdapter

from stockworker.client import command_bytes, command_key
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
