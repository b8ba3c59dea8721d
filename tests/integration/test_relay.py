"""The outbox relay against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.adapters.postgres.retention import RetentionSweeper
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.bootstrap import PostgresKafkaRelay as OutboxRelay
from stockworker.config.kafka import KafkaConnection
from stockworker.entrypoints.outbox_admin import print_parked, retry_parked
from stockworker.service.limits import record_limit
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector, delete_topics
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


# --- Rows the broker refuses: parked, never a wedge -------------------------------------


async def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    """Set the topic's limit and wait until the broker reports it: a topic config change
    reaches the broker through KRaft's metadata log after AlterConfigs has answered, and
    a record sent meanwhile is judged by the old limit (this test was flaky so)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(limit)})]
        )
    finally:
        await admin.close()
    for _ in range(100):
        if await max_message_bytes(bootstrap, topic) == limit:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{topic}: max.message.bytes is still not {limit}")


async def max_message_bytes(bootstrap: str, topic: str, within: float = 30) -> int:
    """The topic's max.message.bytes, once the broker reports it: right after a topic is
    created its configuration can come back empty for a moment."""
    deadline = asyncio.get_running_loop().time() + within
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})]
            )
            [resource] = response.resources
            entries = [e for e in resource[4] if e[0] == "max.message.bytes"]
            if entries:
                return int(entries[0][1])
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{topic}: the broker reports no max.message.bytes")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def row(topic: str, value: bytes, key: bytes = b"SKU-1") -> OutboxMessage:
    return OutboxMessage(uuid.uuid4(), topic, key, value, (("type", b"Test"),))


async def run_relay_until(
    relay: OutboxRelay,
    services: Services,
    topics: Topics,
    done: Callable[[EventCollector], bool],
    within: float = 30,
) -> EventCollector:
    task = asyncio.create_task(relay.run())
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await events.until(done, within)
            await events.settle(1.5)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
    return events


async def parked_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT id, event_id, parked_reason FROM outbox WHERE parked_at IS NOT NULL ORDER BY id"
        )
    )


async def eventually_parked(pool: asyncpg.Pool, count: int) -> list[asyncpg.Record]:
    for _ in range(300):
        if len(rows := await parked_rows(pool)) >= count:
            return rows
        await asyncio.sleep(0.1)
    raise TimeoutError(f"fewer than {count} rows parked")


async def test_a_row_the_broker_refuses_is_parked_and_the_rows_behind_it_go_out_in_order(
    services: Services, topics: Topics, pool: asyncpg.Pool, database_url: str
) -> None:
    # The dead-letter topic takes at most 10,000 bytes; the relay's producer 200,000.
    await set_max_message_bytes(services.kafka_bootstrap_servers, topics.dead_letters, 10_000)
    relay = OutboxRelay(database_url, services.kafka_bootstrap_servers, max_record_bytes=200_000)
    normal = [row(topics.changed, f'{{"n": {i}}}'.encode()) for i in range(6)]
    too_large_for_the_topic = row(topics.dead_letters, b"d" * 50_000)
    small_dead_letter = row(topics.dead_letters, b"small")
    too_large_for_the_producer = row(topics.changed, b"c" * 300_000)
    await write_outbox(
        pool,
        [
            normal[0],
            normal[1],
            too_large_for_the_topic,
            normal[2],
            small_dead_letter,
            normal[3],
            too_large_for_the_producer,
            normal[4],
            normal[5],
        ],
    )

    events = await run_relay_until(
        relay,
        services,
        topics,
        lambda c: len(c.on(topics.changed)) >= 6 and len(c.on(topics.dead_letters)) >= 1,
    )

    # Every publishable row exactly once, in id order (one key, one partition per topic).
    changed = events.on(topics.changed)
    assert [r.value for r in changed] == [m.value for m in normal]
    assert [r.headers["event_id"] for r in changed] == [str(m.event_id).encode() for m in normal]
    assert [r.value for r in events.on(topics.dead_letters)] == [b"small"]
    parked = await parked_rows(pool)
    assert [r["event_id"] for r in parked] == [
        too_large_for_the_topic.event_id,
        too_large_for_the_producer.event_id,
    ]
    assert all(r["parked_reason"].startswith("MessageSizeTooLargeError") for r in parked)
    assert relay.parked == 2 and relay.published == 7
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
    assert await pool.fetchval(unpublished) == 0
    # Published rows left the outbox with their acknowledgement; the parked ones stay.
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 2

    # Retention deletes published rows, never parked ones.
    await RetentionSweeper(pool, inbox_seconds=0, outbox_seconds=0).sweep()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 2
    assert [r["id"] for r in await parked_rows(pool)] == [r["id"] for r in parked]


async def test_a_refused_batch_does_not_let_later_rows_of_its_partition_overtake_or_wedge(
    services: Services, topics: Topics, pool: asyncpg.Pool, database_url: str
) -> None:
    """The refused row travels in a producer batch of its own (above the 512 KiB batch
    size) between batches of small rows of the same partition: the broker refuses it
    and, for the idempotent producer, the batches after it too (sequence gap)."""
    await set_max_message_bytes(services.kafka_bootstrap_servers, topics.dead_letters, 10_000)
    relay = OutboxRelay(database_url, services.kafka_bootstrap_servers)
    small = [row(topics.dead_letters, f"s{i}".encode(), key=b"K") for i in range(6)]
    big = row(topics.dead_letters, b"b" * 600_000, key=b"K")
    await write_outbox(pool, [*small[:3], big, *small[3:]])

    events = await run_relay_until(
        relay, services, topics, lambda c: len(c.on(topics.dead_letters)) >= 6
    )

    assert [r.value for r in events.on(topics.dead_letters)] == [m.value for m in small]
    assert [r["event_id"] for r in await parked_rows(pool)] == [big.event_id]


async def test_an_operator_lists_parked_rows_and_requeues_one_once_its_cause_is_fixed(
    services: Services,
    topics: Topics,
    pool: asyncpg.Pool,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await set_max_message_bytes(services.kafka_bootstrap_servers, topics.dead_letters, 10_000)
    big = row(topics.dead_letters, b"d" * 50_000, key=b"SKU-9")
    after = row(topics.changed, b'{"after": true}')
    await write_outbox(pool, [big, after])
    relay = OutboxRelay(database_url, services.kafka_bootstrap_servers)
    task = asyncio.create_task(relay.run())
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await events.until(lambda c: len(c.on(topics.changed)) == 1, 30)
            [parked] = await eventually_parked(pool, 1)

            assert await print_parked(database_url) == 1
            listing = capsys.readouterr().out
            assert str(parked["id"]) in listing and str(big.event_id) in listing
            assert "SKU-9" in listing and topics.dead_letters in listing
            assert "MessageSizeTooLargeError" in listing
            assert "d" * 100 not in listing  # never the payload

            # The operator raises the topic's limit, then re-queues the row.
            await set_max_message_bytes(
                services.kafka_bootstrap_servers, topics.dead_letters, 1_000_000
            )
            assert await retry_parked(database_url, [parked["id"], 999_999]) == 1
            await events.until(lambda c: len(c.on(topics.dead_letters)) == 1, 30)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
    assert events.on(topics.dead_letters)[0].value == big.value
    assert await parked_rows(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_topics_give_the_dead_letter_topic_the_limit_dead_letters_are_built_for(
    services: Services,
) -> None:
    topics = Topics(prefix=f"test-{uuid.uuid4().hex[:10]}.")
    limit = record_limit(2_000_000)
    await ensure_topics(
        services.kafka_bootstrap_servers, topics, 1, dead_letters_max_message_bytes=limit
    )
    try:
        dlq = await max_message_bytes(services.kafka_bootstrap_servers, topics.dead_letters)
        assert dlq == limit
    finally:
        await delete_topics(services.kafka_bootstrap_servers, topics)


async def test_a_relay_whose_producer_cannot_be_built_leaves_no_database_session_open(
    services: Services, pool: asyncpg.Pool, database_url: str
) -> None:
    kafka = KafkaConnection(
        services.kafka_bootstrap_servers,
        security_protocol="SSL",
        ssl_cafile="/nonexistent/stockworker-ca.pem",
    )
    relay = OutboxRelay(database_url, kafka)
    sessions = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    async with pool.acquire() as conn:
        before = await conn.fetchval(sessions)
        failures = []  # kept, as a caller logging or backing off holds them
        for _ in range(3):
            with pytest.raises(FileNotFoundError) as caught:
                await relay._run_once()
            failures.append(caught)
        assert await conn.fetchval(sessions) == before
