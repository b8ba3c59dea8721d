"""What the typed client puts on the wire: the contract's key and only the fields set."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaConnectionError
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


class _Producer:
    """Takes every record at once (the broker is not what these tests are about)."""

    def __init__(self, changed: asyncio.Event) -> None:
        self.sent: list[bytes] = []
        self.stopped = False
        self._changed = changed

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        self.sent.append(value)
        self._changed.set()

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        self._changed.set()
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


class _Results:
    """A results reader whose `getmany` fails with `error` once `fail` is set."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.fail = asyncio.Event()
        self.stopped = False

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        await self.fail.wait()
        raise self.error

    async def stop(self) -> None:
        self.stopped = True


async def _until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    async with asyncio.timeout(10):
        while not condition():
            changed.clear()
            await changed.wait()


class _Client(StockClient):
    """The client with its Kafka clients replaced: every results reader it starts is kept."""

    def __init__(self) -> None:
        super().__init__("localhost:9092")
        self.changed = asyncio.Event()  # set on every record sent and reader started
        self.producer = _Producer(self.changed)
        self.readers: list[_Results] = []

    async def __aenter__(self) -> _Client:
        self._producer = cast(Any, self.producer)
        return self

    async def _start_reading(self) -> None:
        reader = _Results(KafkaConnectionError(f"reader {len(self.readers)} lost the broker"))
        self.readers.append(reader)
        self._results = cast(Any, reader)
        self._reading = asyncio.create_task(self._dispatch(cast(Any, reader)))
        self.changed.set()


async def test_a_failing_results_reader_fails_its_waiters_and_the_next_wait_starts_another() -> (
    None
):
    model = _COMMAND.validate_python(command("AdjustInventory"))
    other = _COMMAND.validate_python(command("PickStock"))
    async with _Client() as client:
        one = asyncio.create_task(client.send_and_wait(model, timeout=60))
        many = asyncio.create_task(client.send_and_wait_many([other], timeout=60))
        # Both wait for their results.
        await _until(lambda: len(client.producer.sent) == 2, client.changed)
        [first] = client.readers
        first.fail.set()
        # The reader's own error, at once, not a timeout after 60 s.
        with pytest.raises(KafkaConnectionError, match="reader 0 lost the broker"):
            await asyncio.wait_for(one, 10)
        with pytest.raises(KafkaConnectionError, match="reader 0 lost the broker"):
            await asyncio.wait_for(many, 10)
        # The next wait stops the dead reader and starts a new one, which reads again.
        again = asyncio.create_task(client.send_and_wait(model, timeout=60))
        await _until(
            lambda: len(client.readers) == 2 and len(client.producer.sent) == 3, client.changed
        )
        assert first.stopped
        client.readers[1].fail.set()
        with pytest.raises(KafkaConnectionError, match="reader 1 lost the broker"):
            await asyncio.wait_for(again, 10)
        third = asyncio.create_task(client.send_and_wait(model, timeout=60))
        await _until(lambda: len(client.readers) == 3, client.changed)
        third.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await third
        client.readers[2].fail.set()
        assert client._reading is not None
        await asyncio.wait([client._reading], timeout=10)
        assert client._reading.done()
    # Leaving stops the failed reader and the producer instead of raising its error.
    assert client.readers[2].stopped and client.producer.stopped
