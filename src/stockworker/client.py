"""A typed Python client for upstream systems: build commands from the contract's own
models, publish them keyed as the contract says, and, when the caller wants to know,
wait for the command's CommandAccepted or CommandRejected.

    from stockworker.client import StockClient, new_command_id
    from stockworker.contract.commands import AdjustInventory

    async with StockClient("localhost:9092") as client:
        result = await client.send_and_wait(
            AdjustInventory(command_id=new_command_id(), occurred_at=now, sku="SKU-1",
                            location="WH1", delta=5, reason="FOUND"),
            timeout=30,
        )

Sending is at least once (acks=all, an idempotent producer); sending a command again
under its command_id is safe: the worker applies it once and answers with the stored
result. Waiting reads the results topic from its end as it was when the wait began, so
a client sees only results of commands it sent (or re-sent) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import Field, TypeAdapter, ValidationError

from stockworker.config.kafka import KafkaConnection, as_connection
from stockworker.contract.commands import AnyCommand, ConfigureLocation
from stockworker.contract.events import CommandAccepted, CommandRejected
from stockworker.service.topics import Topics

Result = CommandAccepted | CommandRejected
_RESULT: TypeAdapter[Result] = TypeAdapter(Annotated[Result, Field(discriminator="type")])


def new_command_id() -> UUID:
    """A fresh command id (any UUID the caller keeps for a retry will do)."""
    return uuid.uuid4()


def command_key(command: AnyCommand) -> bytes:
    """The record key the contract asks for: the SKU (so one SKU's commands keep their
    order), or the location code for ConfigureLocation."""
    if isinstance(command, ConfigureLocation):
        return command.code.encode()
    return command.sku.encode()


def command_bytes(command: AnyCommand) -> bytes:
    """The command as JSON: the fields the caller set (and `type`), so an optional field
    left out is not sent as null."""
    body = command.model_dump(exclude_unset=True)
    body["type"] = command.type
    # Money as a decimal string (exact); UUIDs and times as orjson writes them.
    return orjson.dumps(body, default=_decimal)


def _decimal(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # never an exponent, which the contract refuses
    raise TypeError(f"{type(value).__name__} is not part of a command")


class StockClient:
    """Publishes commands to `<prefix>stock.commands.v1` and waits for their results on
    `<prefix>stock.command-results.v1`. Use it as an async context manager."""

    def __init__(self, kafka: KafkaConnection | str, topic_prefix: str = "") -> None:
        self._kafka = as_connection(kafka)
        self._topics = Topics(topic_prefix)
        self._producer: AIOKafkaProducer | None = None
        self._results: AIOKafkaConsumer | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, list[asyncio.Future[Result]]] = {}

    async def __aenter__(self) -> StockClient:
        producer = AIOKafkaProducer(
            **self._kafka.client_options(), acks="all", enable_idempotence=True, linger_ms=1
        )
        await producer.start()
        self._producer = producer
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._results is not None:
            await self._results.stop()
        if self._producer is not None:
            await self._producer.stop()
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()

    async def send(self, command: AnyCommand, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Publish one command; returns once the broker has it (acks=all)."""
        if self._producer is None:
            raise RuntimeError("use StockClient as `async with StockClient(...) as client`")
        await self._producer.send_and_wait(
            self._topics.commands,
            command_bytes(command),
            key=command_key(command),
            headers=list(headers),
        )

    async def send_and_wait(
        self,
        command: AnyCommand,
        # A parameter, not asyncio.timeout(): the error then names the command.
        timeout: float = 30.0,  # noqa: ASYNC109
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Result:
        """Publish one command and return its CommandAccepted or CommandRejected.
        TimeoutError when none arrives within `timeout` seconds (no worker running, or
        a backlog ahead of it); the command may still be applied later, and sending it
        again under the same command_id is safe."""
        await self._read_results()
        key = str(command.command_id).encode()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            await self.send(command, headers)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no result for command {command.command_id} within {timeout:g} s "
                "(is a worker running? it may still be applied)"
            ) from None
        finally:
            futures = self._waiting.get(key, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(key, None)

    async def _read_results(self) -> None:
        """Start reading the results topic from its current end, once."""
        if self._reading is not None:
            return
        consumer = AIOKafkaConsumer(
            **self._kafka.client_options(), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        self._results = consumer
        topic = self._topics.results
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.add_topic(topic)
            partitions = consumer._client.cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist (create it: stockworker topics)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # the positions are fixed now, before any command is sent
            await consumer.position(tp)
        self._reading = asyncio.create_task(self._dispatch(consumer))

    async def _dispatch(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    futures = self._waiting.get(record.key)
                    if not futures:
                        continue
                    try:
                        result = _RESULT.validate_json(record.value)
                    except ValidationError as exc:  # not a result of this contract version
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                        continue
                    for future in futures:
                        if not future.done():
                            future.set_result(result)
