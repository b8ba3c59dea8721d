"""KafkaPublisher (librdkafka) against the real broker: what the outbox relay relies on."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner

from stockworker.adapters.kafka.publisher import (
    InvalidTopicError,
    KafkaPublisher,
    MessageSizeTooLargeError,
    NotSent,
    is_unpublishable,
)
from stockworker.service.limits import EVENT_ID_HEADER
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector
from tests.support.services import Services

pytestmark = pytest.mark.integration

PARTITIONS = list(range(6))  # the `topics` fixture's


def message(topic: str, value: bytes, key: bytes | None = b"SKU-1") -> OutboxMessage:
    return OutboxMessage(uuid.uuid4(), topic, key, value, (("type", b"Test"), ("raw", b"\xff")))


@pytest.fixture
async def publishers(services: Services) -> AsyncIterator[Callable[..., KafkaPublisher]]:
    """Started publishers, each stopped at the end of the test."""
    started: list[KafkaPublisher] = []

    def new(kafka: str | None = None, **options: Any) -> KafkaPublisher:
        publisher = KafkaPublisher(kafka or services.kafka_bootstrap_servers, **options)
        started.append(publisher)
        return publisher

    yield new
    for publisher in started:
        await publisher.stop()


async def read(services: Services, topics: Topics, topic: str, count: int) -> EventCollector:
    async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
        await events.until(lambda c: len(c.on(topic)) >= count, 30)
        await events.settle(1.0)
    return events


async def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(limit)})]
        )
    finally:
        await admin.close()


async def test_acknowledged_messages_are_readable_in_order_with_their_headers(
    services: Services, topics: Topics, publishers: Callable[..., KafkaPublisher]
) -> None:
    publisher = publishers()
    await publisher.start()
    messages = [message(topics.changed, f'{{"n": {i}}}'.encode()) for i in range(200)]

    assert await publisher.publish(messages[:150]) == [None] * 150
    assert await publisher.publish(messages[150:]) == [None] * 50
    assert await publisher.publish([]) == []

    seen = (await read(services, topics, topics.changed, 200)).on(topics.changed)
    assert [r.value for r in seen] == [m.value for m in messages]  # one key, one partition
    assert [r.header(EVENT_ID_HEADER) for r in seen] == [str(m.event_id).encode() for m in messages]
    assert list(seen[0].headers) == ["type", "raw", EVENT_ID_HEADER]
    assert (seen[0].headers["type"], seen[0].headers["raw"]) == (b"Test", b"\xff")
    assert seen[0].key == b"SKU-1"


async def test_keys_go_to_the_partitions_java_clients_and_aiokafka_choose(
    services: Services, topics: Topics, publishers: Callable[..., KafkaPublisher]
) -> None:
    """murmur2, as before the switch to librdkafka: a SKU's events stay on its partition."""
    publisher = publishers()
    await publisher.start()
    keys = [f"SKU-{i}".encode() for i in range(30)]
    assert await publisher.publish([message(topics.changed, b"{}", key=k) for k in keys]) == [
        None
    ] * len(keys)

    seen = (await read(services, topics, topics.changed, len(keys))).on(topics.changed)
    assert {r.key: r.partition for r in seen} == {
        k: DefaultPartitioner()(k, PARTITIONS, PARTITIONS) for k in keys
    }


async def test_a_message_over_the_producers_limit_is_refused_and_nothing_after_it_is_sent(
    services: Services, topics: Topics, publishers: Callable[..., KafkaPublisher]
) -> None:
    publisher = publishers(max_record_bytes=200_000)
    await publisher.start()
    before = [message(topics.changed, b"a"), message(topics.changed, b"b")]
    too_large = message(topics.changed, b"x" * 250_000)
    after = [message(topics.changed, b"c"), message(topics.dead_letters, b"d")]

    results = await publisher.publish([*before, too_large, *after])

    assert results[:2] == [None, None]
    refused = results[2]
    assert isinstance(refused, MessageSizeTooLargeError) and is_unpublishable(refused)
    assert "200000 bytes" in str(refused)
    assert [type(r) for r in results[3:]] == [NotSent, NotSent]
    # The same publisher goes on with what fits.
    assert await publisher.publish([*after]) == [None, None]
    events = await read(services, topics, topics.changed, 3)
    assert [r.value for r in events.on(topics.changed)] == [b"a", b"b", b"c"]
    assert [r.value for r in events.on(topics.dead_letters)] == [b"d"]


async def test_a_batch_the_broker_refuses_is_overtaken_by_nothing_of_its_partition(
    services: Services, topics: Topics, publishers: Callable[..., KafkaPublisher]
) -> None:
    """The refused record travels in a batch of its own (above the 512 KiB batch size)
    between batches of small ones of its partition: the gap-less guarantee ends the
    producer there, publish answers for every message at once (no waiting for the
    deadline), and a fresh publisher sends the rest."""
    await set_max_message_bytes(services.kafka_bootstrap_servers, topics.dead_letters, 10_000)
    small = [message(topics.dead_letters, f"s{i}".encode(), key=b"K") for i in range(6)]
    big = message(topics.dead_letters, b"b" * 600_000, key=b"K")
    publisher = publishers(delivery_timeout_seconds=60)
    await publisher.start()

    started = time.monotonic()
    results = await publisher.publish([*small[:3], big, *small[3:]])

    assert time.monotonic() - started < 30
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], MessageSizeTooLargeError) and is_unpublishable(results[3])
    later = results[4:]
    assert all(r is not None and not is_unpublishable(r) for r in later), later
    # The producer is finished: it refuses what it is given, and stops.
    [refused] = await publisher.publish([small[3]])
    assert refused is not None and not is_unpublishable(refused)
    await publisher.stop()

    fresh = publishers()
    await fresh.start()
    assert await fresh.publish(small[3:]) == [None, None, None]
    seen = (await read(services, topics, topics.dead_letters, 6)).on(topics.dead_letters)
    assert [r.value for r in seen] == [m.value for m in small]


async def test_an_invalid_topic_name_is_unpublishable(
    publishers: Callable[..., KafkaPublisher],
) -> None:
    publisher = publishers()
    await publisher.start()
    [error] = await publisher.publish([message("no spaces allowed", b"{}")])
    assert isinstance(error, InvalidTopicError) and is_unpublishable(error)


async def test_a_topic_that_does_not_exist_fails_in_bounded_time_and_is_retried(
    topics: Topics, publishers: Callable[..., KafkaPublisher]
) -> None:
    """This broker creates topics on demand: the publisher is told not to ask for it."""
    publisher = publishers(
        delivery_timeout_seconds=3,
        librdkafka_overrides={"allow.auto.create.topics": False},
    )
    await publisher.start()
    started = time.monotonic()
    results = await publisher.publish(
        [message(f"{topics.prefix}missing", b"{}"), message(f"{topics.prefix}missing", b"{}")]
    )
    assert time.monotonic() - started < 15
    assert all(r is not None and not is_unpublishable(r) for r in results), results


async def test_no_broker_answering_fails_in_bounded_time_and_stop_still_works(
    publishers: Callable[..., KafkaPublisher],
) -> None:
    publisher = publishers(kafka="127.0.0.1:1", delivery_timeout_seconds=2)
    await publisher.start()
    started = time.monotonic()
    results = await publisher.publish([message("anything", b"1"), message("anything", b"2")])
    assert time.monotonic() - started < 14
    assert all(r is not None and not is_unpublishable(r) for r in results), results
    assert "within 2 s" in str(results[0])
    await publisher.stop()
