"""Publishing commands to, and reading events from, a real Kafka in tests; deleting a
test's topics afterwards."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from stockworker.service.topics import Topics


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes | None]

    def header(self, name: str) -> bytes:
        """A header that must be there and not null."""
        value = self.headers[name]
        assert value is not None, name
        return value

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.value)
        return result


async def publish(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> int:
    """Publish (key, value) pairs in order; returns how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=list(headers))
            for key, value in messages
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


def command_message(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """Keyed as upstream keys them: by SKU, or by location code for ConfigureLocation."""
    key = body.get("sku") or body["code"]
    return key.encode(), json.dumps(body).encode()


@dataclass
class EventCollector:
    """Reads every output topic from the beginning, keeping everything it saw."""

    bootstrap: str
    topics: Topics
    seen: list[Received] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> EventCollector:
        self._consumer = AIOKafkaConsumer(
            self.topics.changed,
            self.topics.low_stock,
            self.topics.purchase_orders,
            self.topics.results,
            self.topics.dead_letters,
            self.topics.lots,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=5000,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for r in records:
                self.seen.append(
                    Received(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers))
                )

    async def until(self, done: Callable[[EventCollector], bool], within: float = 60) -> None:
        deadline = time.monotonic() + within
        while not done(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting; saw {self.counts()}")
            await self.poll()

    async def settle(self, quiet_seconds: float = 2.0) -> None:
        """Read until nothing new arrives for `quiet_seconds` (to catch extra events)."""
        last = len(self.seen)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            await self.poll()
            if len(self.seen) != last:
                last, quiet_since = len(self.seen), time.monotonic()

    def on(self, topic: str) -> list[Received]:
        return [r for r in self.seen if r.topic == topic]

    def results(self) -> dict[str, dict[str, Any]]:
        """The (last) result per command_id."""
        return {r.json()["command_id"]: r.json() for r in self.on(self.topics.results)}

    def counts(self) -> dict[str, int]:
        return {t: len(self.on(t)) for t in self.topics.all()}


async def apply_commands(
    bootstrap: str,
    topics: Topics,
    events: EventCollector,
    bodies: Sequence[dict[str, Any]],
    within: float = 60,
) -> list[dict[str, Any]]:
    """Publish commands (keyed as upstream keys them), wait for their results, return
    those results in the commands' order."""
    await publish(bootstrap, topics.commands, [command_message(b) for b in bodies])
    ids = [b["command_id"] for b in bodies]
    await events.until(lambda c: set(ids) <= set(c.results()), within)
    results = events.results()
    return [results[i] for i in ids]


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    """Delete the contract's topics under this prefix: thousands of leftover partitions
    would make every broker restart (fault tests) slow."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics.all() if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
