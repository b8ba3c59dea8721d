"""The outbox relay against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from stockworker.adapters.kafka.relay import OutboxRelay
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector
from tests.support.services import Services

pytestmark = pytest.mark.integration


async def write_outbox(pool: asyncpg.Pool, messages: list[OutboxMessage]) -> None:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        await uow.append_outbox(messages)


async def test_committed_outbox_rows_are_published_once_by_the_one_leading_relay(
    services: Services, topics: Topics, database_url: str, pool: asyncpg.Pool
) -> None:
    relays = [OutboxRelay(database_url, services.kafka_bootstrap_servers) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    messages = [
        OutboxMessage(
            uuid.uuid4(),
            topics.changed,
            b"SKU-1",
            f'{{"n": {i}}}'.encode(),
            (("type", b"StockChanged"), ("raw", b"\xff")),
        )
        for i in range(50)
    ]
    try:
        await write_outbox(pool, messages[:20])
        await write_outbox(pool, messages[20:])
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await events.until(lambda c: len(c.on(topics.changed)) >= 50, 60)
            await events.settle(1.0)
    finally:
        for r in relays:
            r.stop()
        await asyncio.gather(*tasks)

    seen = events.on(topics.changed)
    assert [r.value for r in seen] == [m.value for m in messages]  # one partition, id order
    assert [r.headers["event_id"] for r in seen] == [str(m.event_id).encode() for m in messages]
    assert seen[0].headers["raw"] == b"\xff"
    assert sorted(r.published for r in relays) == [0, 50]  # one leader published everything
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_stopped_relay_leaves_nothing_committed_unpublished(
    services: Services, topics: Topics, database_url: str, pool: asyncpg.Pool
) -> None:
    await write_outbox(
        pool, [OutboxMessage(uuid.uuid4(), topics.results, b"k", b"{}") for _ in range(5)]
    )
    relay = OutboxRelay(database_url, services.kafka_bootstrap_servers)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.5)
    relay.stop()
    await asyncio.wait_for(task, 30)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
