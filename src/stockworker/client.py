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

Many commands: `send_many` hands them to the producer one after another without waiting
for each (in order, batched by the producer: `linger_ms`, `max_batch_size`) and returns
once the broker has them all; `send_and_wait_many` also returns their results, in the
commands' order. `encode_command` encodes a command ahead of time (a publisher that
keeps encoding out of a timed loop, as bench/bench.py does); both send methods take
encoded commands too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class EncodedCommand:
    """A command as it goes on the wire (made by `encode_command`): its id, the record's
    key and value."""

    command_id: UUID
    key: bytes
    value: bytes


def encode_command(command: AnyCommand) -> EncodedCommand:
    """Encode a command ahead of sending it (the same bytes and key `send` would use)."""
    return EncodedCommand(command.command_id, command_key(command), command_bytes(command))


Sendable = AnyCommand | EncodedCommand
"""What the send methods take: a command model, or one encoded ahead of time."""


def _encoded(command: Sendable) -> EncodedCommand:
    return command if isinstance(command, EncodedCommand) else encode_command(command)


async def _each(commands: Iterable[Sendable] | AsyncIterable[Sendable]) -> AsyncIterator[Sendable]:
    if isinstance(commands, AsyncIterable):
        async for command in commands:
            yield command
    else:
        for command in commands:
            yield command


def _failure(command_id: UUID, future: asyncio.Future[Any]) -> tuple[UUID, BaseException] | None:
    """The delivery failure of a done future, if it failed (retrieved, so never reported
    as an exception nobody looked at)."""
    if future.cancelled():
        return command_id, asyncio.CancelledError()
    exc = future.exception()
    return None if exc is None else (command_id, exc)


class StockClient:
    """Publishes commands to `<prefix>stock.commands.v1` and waits for their results on
    `<prefix>stock.command-results.v1`. Use it as an async context manager."""

    def __init__(
        self,
        kafka: KafkaConnection | str,
        topic_prefix: str = "",
        *,
        linger_ms: int = 1,
        max_batch_size: int = 16_384,
    ) -> None:
        """`linger_ms` (0 to 60,000): how long the producer waits to fill a batch;
        `max_batch_size` (1,024 to 100,000,000 bytes): the most it puts in one batch per
        partition. The defaults suit a command at a time; a publisher of many commands
        per second trades a few milliseconds of latency for fewer, larger requests."""
        if isinstance(linger_ms, bool) or not 0 <= linger_ms <= 60_000:
            raise ValueError(f"linger_ms {linger_ms!r} is out of range: between 0 and 60000")
        if isinstance(max_batch_size, bool) or not 1_024 <= max_batch_size <= 100_000_000:
            raise ValueError(
                f"max_batch_size {max_batch_size!r} is out of range: between 1024 and 100000000"
            )
        self._kafka = as_connection(kafka)
        self._topics = Topics(topic_prefix)
        self._linger_ms = linger_ms
        self._max_batch_size = max_batch_size
        self._producer: AIOKafkaProducer | None = None
        self._results: AIOKafkaConsumer | None = None
        self._reading: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()  # one results reader, however many wait at once
        self._waiting: dict[bytes, list[asyncio.Future[Result]]] = {}

    async def __aenter__(self) -> StockClient:
        producer = AIOKafkaProducer(
            **self._kafka.client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            max_batch_size=self._max_batch_size,
        )
        await producer.start()
        self._producer = producer
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._reading is not None:
            self._reading.cancel()
            # A reader that failed has told its waiters already; everything is stopped.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reading
        try:
            if self._results is not None:
                await self._results.stop()
        finally:
            if self._producer is not None:
                await self._producer.stop()
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("use StockClient as `async with StockClient(...) as client`")
        return self._producer

    async def send(self, command: Sendable, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Publish one command; returns once the broker has it (acks=all)."""
        encoded = _encoded(command)
        await self._started().send_and_wait(
            self._topics.commands, encoded.value, key=encoded.key, headers=list(headers)
        )

    async def send_many(
        self,
        commands: Iterable[Sendable] | AsyncIterable[Sendable],
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        """Publish commands in order without waiting for each: every one is handed to the
        producer as soon as the previous one is (an async iterable may pace them), and
        the call returns, with how many were sent, once the broker has them all. A
        command the broker refused raises its error, naming the command, after the rest
        were delivered; sending any of them again is safe."""
        producer = self._started()
        topic = self._topics.commands
        extra = list(headers) or None
        in_flight: deque[tuple[UUID, asyncio.Future[Any]]] = deque()
        failures: list[tuple[UUID, BaseException]] = []
        sent = 0
        async for command in _each(commands):
            encoded = _encoded(command)
            future = await producer.send(topic, encoded.value, key=encoded.key, headers=extra)
            in_flight.append((encoded.command_id, future))
            sent += 1
            # Only what is still in flight is kept (a long stream stays small).
            while in_flight and in_flight[0][1].done():
                if failure := _failure(*in_flight.popleft()):
                    failures.append(failure)
        await producer.flush()  # every future is done after this
        failures += filter(None, (_failure(*pair) for pair in in_flight))
        if failures:
            command_id, exc = failures[0]
            exc.add_note(
                f"command {command_id} was not delivered ({len(failures)} of {sent} "
                "commands failed; sending them again is safe)"
            )
            raise exc
        return sent

    async def send_and_wait(
        self,
        command: Sendable,
        # A parameter, not asyncio.timeout(): the error then names the command.
        timeout: float = 30.0,  # noqa: ASYNC109
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Result:
        """Publish one command and return its CommandAccepted or CommandRejected.
        TimeoutError when none arrives within `timeout` seconds (no worker running, or
        a backlog ahead of it); the command may still be applied later, and sending it
        again under the same command_id is safe."""
        await self._read_results()
        [future] = self._expect([command.command_id])
        try:
            await self.send(command, headers)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no result for command {command.command_id} within {timeout:g} s "
                "(is a worker running? it may still be applied)"
            ) from None
        finally:
            self._forget([command.command_id], [future])

    async def send_and_wait_many(
        self,
        commands: Sequence[Sendable],
        timeout: float = 30.0,  # noqa: ASYNC109
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> list[Result]:
        """Publish commands in order (as `send_many`) and return their results in the
        same order. TimeoutError, naming the first command without one, when not every
        result arrives within `timeout` seconds of the last command's delivery."""
        await self._read_results()
        ids = [command.command_id for command in commands]
        futures = self._expect(ids)
        try:
            await self.send_many(commands, headers)
            if futures:
                _, pending = await asyncio.wait(futures, timeout=timeout)
                if pending:
                    missing = [i for i, f in zip(ids, futures, strict=True) if f in pending]
                    raise TimeoutError(
                        f"no result for {len(missing)} of {len(ids)} commands within "
                        f"{timeout:g} s, the first command {missing[0]} (is a worker "
                        "running? they may still be applied)"
                    )
            return [future.result() for future in futures]
        finally:
            self._forget(ids, futures)

    def _expect(self, command_ids: Sequence[UUID]) -> list[asyncio.Future[Result]]:
        """Futures for these commands' results, registered before anything is sent."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Result]] = []
        for command_id in command_ids:
            future: asyncio.Future[Result] = loop.create_future()
            self._waiting.setdefault(str(command_id).encode(), []).append(future)
            futures.append(future)
        return futures

    def _forget(
        self, command_ids: Sequence[UUID], futures: Sequence[asyncio.Future[Result]]
    ) -> None:
        for command_id, future in zip(command_ids, futures, strict=True):
            key = str(command_id).encode()
            waiting = self._waiting.get(key, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiting.pop(key, None)
            if not future.done():
                future.cancel()

    async def _read_results(self) -> None:
        """Start reading the results topic from its current end, once (callers that
        wait at the same time share one reader)."""
        async with self._starting:
            if self._reading is not None and self._reading.done():
                await self._stop_reading()  # it failed (its waiters were told): a new one
            if self._reading is None:
                await self._start_reading()

    async def _stop_reading(self) -> None:
        reading, self._reading = self._reading, None
        results, self._results = self._results, None
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
        if results is not None:
            with contextlib.suppress(Exception):
                await results.stop()

    async def _start_reading(self) -> None:
        consumer = AIOKafkaConsumer(
            **self._kafka.client_options(), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await self._assign_at_end(consumer)
        except BaseException:
            await consumer.stop()
            raise
        self._results = consumer
        self._reading = asyncio.create_task(self._dispatch(consumer))

    async def _assign_at_end(self, consumer: AIOKafkaConsumer) -> None:
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

    async def _dispatch(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await self._read(consumer)
        except Exception as exc:
            # Every waiter gets the reader's error rather than a timeout; the next wait
            # starts a new reader (_read_results).
            for futures in self._waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            raise

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
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
