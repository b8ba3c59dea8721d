"""Reading a topic by partition and offset range, and by time, outside any group."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from stockworker.adapters.kafka.topic_reader import TopicReader, UnknownTopicOrPartition
from stockworker.service.topics import Topics
from tests.support.kafka_io import publish
from tests.support.raw_kafka import Raw, produce_raw
from tests.support.services import Services

pytestmark = pytest.mark.integration


async def _partition_holding_records(reader: TopicReader, topic: str) -> int:
    bounds = await reader.bounds(topic)
    return next(p for p, b in bounds.items() if b.end > 0)


async def test_ranges_bounds_and_times(services: Services, topics: Topics) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await publish(bootstrap, topics.dead_letters, [(b"k", f"v{i}".encode()) for i in range(5)])
    await asyncio.sleep(0.05)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await publish(bootstrap, topics.dead_letters, [(b"k", f"w{i}".encode()) for i in range(3)])
    async with TopicReader(bootstrap) as reader:
        assert await reader.partitions(topics.dead_letters) == [0, 1, 2, 3, 4, 5]
        partition = await _partition_holding_records(reader, topics.dead_letters)
        bounds = await reader.bounds(topics.dead_letters)
        assert (bounds[partition].beginning, bounds[partition].end) == (0, 8)
        assert sum(b.records for b in bounds.values()) == 8

        batches = [b async for b in reader.read(topics.dead_letters, {partition: (2, 6)})]
        values = [r.value for batch in batches for r in batch]
        assert values == [b"v2", b"v3", b"v4", b"w0"]
        # Past the end stops at the end; empty ranges read nothing.
        tail = [r async for b in reader.read(topics.dead_letters, {partition: (7, 99)}) for r in b]
        assert [r.offset for r in tail] == [7]
        assert [b async for b in reader.read(topics.dead_letters, {partition: (3, 3)})] == []

        at = await reader.offsets_at(topics.dead_letters, between)
        assert at[partition] == 5
        later = await reader.offsets_at(topics.dead_letters, datetime.now(UTC) + timedelta(1))
        assert later[partition] == 8  # nothing at or after: the end

        one = await reader.read_one(topics.dead_letters, partition, 4)
        assert one is not None
        assert (one.key, one.value, one.offset) == (b"k", b"v4", 4)
        assert await reader.read_one(topics.dead_letters, partition, 8) is None

        with pytest.raises(UnknownTopicOrPartition, match="no partition 6"):
            await reader.bounds(topics.dead_letters, [6])
        with pytest.raises(UnknownTopicOrPartition, match="does not exist"):
            await reader.partitions(topics.prefix + "no-such-topic")


async def test_a_record_with_a_header_key_that_is_not_utf8_is_read(
    services: Services, topics: Topics
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await produce_raw(
        bootstrap,
        topics.commands,
        0,
        [Raw(b"k", b"{}", [(b"\xff", b"x")]), Raw(b"k", b"after")],
    )
    async with TopicReader(bootstrap) as reader:
        records = [r async for b in reader.read(topics.commands, {0: (0, 2)}) for r in b]
        assert [r.value for r in records] == [b"{}", b"after"]
        ((key, value),) = records[0].headers
        assert key.encode("utf-8", "surrogateescape") == b"\xff"
        assert value == b"x"
