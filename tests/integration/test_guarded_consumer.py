"""GuardedConsumer against a real broker: a record aiokafka cannot read costs no other record."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from stockworker.adapters.kafka.guarded_consumer import GuardedConsumer
from stockworker.config import ConfigurationError, Settings
from stockworker.entrypoints.worker import _broker
from stockworker.service.topics import Topics
from tests.support.raw_kafka import Raw, produce_raw
from tests.support.services import Services

pytestmark = pytest.mark.integration

POISON = Raw(b"poison", b"{}", [(b"ok", b"1"), (b"\xff\xfe-not-utf8", b"v")])


async def fill(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    """Ten good records on each of 6 partitions, a poison record after the fifth on 2 and 4."""
    sent: dict[int, list[bytes]] = defaultdict(list)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for i in range(10):
            if i == 5:
                for partition in (2, 4):
                    await produce_raw(bootstrap, topic, partition, [POISON])
                    sent[partition].append(POISON.value or b"")
            for partition in range(6):
                value = f"p{partition}-{i}".encode()
                await producer.send_and_wait(topic, value, partition=partition)
                sent[partition].append(value)
    finally:
        await producer.stop()
    return sent


async def drain(
    consumer: AIOKafkaConsumer, expected: int, max_records: int | None, rounds: int = 40
) -> list[Any]:
    got: list[Any] = []
    for _ in range(rounds):
        try:
            batch = await consumer.getmany(timeout_ms=500, max_records=max_records)
        except Exception:
            continue
        got.extend(r for records in batch.values() for r in records)
        if len(got) >= expected:
            break
    return got


class SlowCommits(GuardedConsumer):
    """Each commit waits a while before it goes, as on a busy coordinator."""

    async def commit(self, offsets: Any = None) -> None:
        await asyncio.sleep(0.2)
        await super().commit(offsets)


async def started_consumer(
    services: Services, *topic_names: str, kind: type[GuardedConsumer] = GuardedConsumer
) -> GuardedConsumer:
    """A started GuardedConsumer of a group of its own, from the earliest offsets."""
    consumer = kind(
        *topic_names,
        bootstrap_servers=services.kafka_bootstrap_servers,
        group_id=f"guarded-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    return consumer


@pytest.mark.parametrize("max_records", [None, 7])
async def test_a_poison_record_is_handed_out_raw_and_no_record_is_skipped(
    services: Services, topics: Topics, max_records: int | None
) -> None:
    sent = await fill(services.kafka_bootstrap_servers, topics.commands)
    consumer = await started_consumer(services, topics.commands)
    try:
        got = await drain(consumer, sum(len(v) for v in sent.values()), max_records)
    finally:
        await consumer.stop()

    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for record in got:
        by_partition[record.partition].append(record.value)
    # Every record exactly once, in partition order: none dropped, none repeated.
    assert dict(by_partition) == dict(sent)
    poison = [r for r in got if r.key == b"poison"]
    assert len(poison) == 2
    for record in poison:
        assert record.headers[0] == ("ok", b"1")
        key, value = record.headers[1]
        assert key.encode("utf-8", "surrogateescape") == b"\xff\xfe-not-utf8"
        assert value == b"v"


@pytest.mark.parametrize("max_records", [None, 2])
async def test_records_after_a_poison_record_in_its_own_batch_are_handed_out(
    services: Services, topics: Topics, max_records: int | None
) -> None:
    """A producer that writes a bad header key batches it with good records: aiokafka
    then cannot decode the batch from any offset in it, so the raw reader must hand out
    the good records after the poison one too (it used to wait for ever)."""
    batch = [
        Raw(b"k", b"a"),
        POISON,
        Raw(b"k", b"b"),
        Raw(b"k", b"c"),
        POISON,
        Raw(b"k", b"d"),
    ]
    await produce_raw(services.kafka_bootstrap_servers, topics.commands, 3, batch)
    consumer = await started_consumer(services, topics.commands)
    try:
        got = await drain(consumer, len(batch), max_records)
    finally:
        await consumer.stop()
    assert [(r.partition, r.offset, r.value) for r in got] == [
        (3, offset, raw.value) for offset, raw in enumerate(batch)
    ]


async def test_a_partition_moved_behind_the_consumers_back_is_read_again(
    services: Services, topics: Topics
) -> None:
    """Defence in depth: a position that moved without handing records out goes back."""
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap_servers)
    await producer.start()
    for i in range(20):
        await producer.send(topics.commands, f"r{i}".encode(), partition=0)
    await producer.stop()
    tp = TopicPartition(topics.commands, 0)
    consumer = await started_consumer(services)
    try:
        consumer.assign([tp])
        first = await consumer.getmany(timeout_ms=5000, max_records=5)
        assert [r.offset for r in first[tp]] == [0, 1, 2, 3, 4]
        # What a fetch that failed half-way leaves behind: the position moved, no records.
        AIOKafkaConsumer.seek(consumer, tp, 12)
        rest: list[int] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            rest.extend(r.offset for r in batch.get(tp, []))
            if len(rest) >= 15:
                break
            await asyncio.sleep(0)
        assert rest == list(range(5, 20))
    finally:
        await consumer.stop()


async def test_any_failure_of_a_fetch_puts_the_partitions_back_and_leaves_as_a_kafka_error(
    services: Services, topics: Topics
) -> None:
    """A fetch that drained records and then raised something aiokafka does not report
    as a KafkaError: FastStream's consume loop would stop on it, and the records would
    be gone."""
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap_servers)
    await producer.start()
    for i in range(12):
        await producer.send(topics.commands, f"r{i}".encode(), partition=i % 3)
    await producer.stop()
    consumer = await started_consumer(services, topics.commands)
    try:
        first = await drain(consumer, 1, None, rounds=40)
        fetcher = consumer._fetcher
        original = fetcher.fetched_records

        async def drains_then_fails(*args: Any, **kwargs: Any) -> Any:
            await original(*args, **kwargs)  # positions move, records are dropped
            raise RuntimeError("something aiokafka did not expect")

        await asyncio.sleep(1)  # let the fetcher buffer the rest
        fetcher.fetched_records = drains_then_fails
        with pytest.raises(KafkaError):
            await consumer.getmany(timeout_ms=500)
        fetcher.fetched_records = original
        rest = await drain(consumer, 12 - len(first), None)
    finally:
        await consumer.stop()
    assert sorted(r.value for r in first + rest) == sorted(f"r{i}".encode() for i in range(12))


async def test_offsets_committed_in_the_background_are_all_committed_once_it_stops(
    services: Services, topics: Topics
) -> None:
    sent = await fill(services.kafka_bootstrap_servers, topics.commands)
    consumer = await started_consumer(services, topics.commands, kind=SlowCommits)
    group = consumer._group_id
    try:
        got = await drain(consumer, sum(len(v) for v in sent.values()), None)
        ends: dict[TopicPartition, int] = {}
        for record in got:
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
            # One commit per record, as fast as they come: most merge while one travels.
            consumer.commit_in_background({tp: record.offset + 1})
    finally:
        await consumer.stop()  # returns once every commit asked for has landed

    check = AIOKafkaConsumer(bootstrap_servers=services.kafka_bootstrap_servers, group_id=group)
    await check.start()
    try:
        committed = {tp: await check.committed(tp) for tp in ends}
    finally:
        await check.stop()
    assert committed == ends


@contextlib.asynccontextmanager
async def producer_and_consumer(
    services: Services, **options: Any
) -> AsyncIterator[tuple[AIOKafkaProducer, GuardedConsumer, str]]:
    """A producer sending at once, a started GuardedConsumer (no group unless given) and
    a topic name of their own; the consumer is assigned nothing yet."""
    bootstrap = services.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = GuardedConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    try:
        yield producer, consumer, f"guarded-{uuid.uuid4().hex[:8]}"
    finally:
        await consumer.stop()
        await producer.stop()


async def fetched_up_to(consumer: GuardedConsumer, tp: TopicPartition, highwater: int) -> None:
    """Waits until a fetch of `tp` has answered with records up to `highwater` (they are
    in aiokafka's buffer, or taken)."""
    for _ in range(200):
        if consumer.highwater(tp) == highwater:
            break
        await asyncio.sleep(0.05)
    assert consumer.highwater(tp) == highwater


async def waiting_in_a_top_up(
    consumer: GuardedConsumer, producer: AIOKafkaProducer, tp: TopicPartition, value: bytes
) -> asyncio.Task[Any]:
    """A `getmany` that has taken `value`, the only record of `tp`, and is waiting in its
    top-up for more."""
    reading = asyncio.create_task(consumer.getmany(timeout_ms=10_000))
    await producer.send_and_wait(tp.topic, value, partition=tp.partition)
    await fetched_up_to(consumer, tp, 1)
    await asyncio.sleep(0.2)  # taken: the top-up waits for more
    assert not reading.done()
    return reading


def values(batch: dict[TopicPartition, list[Any]]) -> list[Any]:
    return [r for records in batch.values() for r in records]


@pytest.mark.parametrize("top_up_ms", [0, 1_000])
async def test_a_batch_is_topped_up_with_what_reached_the_broker_meanwhile(
    services: Services, top_up_ms: int
) -> None:
    """aiokafka fetches a partition again only once its buffered records are taken: a
    record that reached the broker after that fetch waits for the next batch but one,
    unless the batch is topped up."""
    async with producer_and_consumer(services, top_up_ms=top_up_ms) as (producer, consumer, topic):
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await producer.send_and_wait(topic, b"a", partition=0)
        first = await drain(consumer, 1, max_records=None)
        assert [r.value for r in first] == [b"a"]
        # Taking "a" sent the next fetch; "b" answers it and waits in aiokafka's buffer
        # (its answer moved the high watermark), then "c" reaches the broker.
        await producer.send_and_wait(topic, b"b", partition=0)
        await fetched_up_to(consumer, tp, 2)
        await producer.send_and_wait(topic, b"c", partition=0)
        batch = await consumer.getmany(timeout_ms=10_000)
        expected = [b"b", b"c"] if top_up_ms else [b"b"]
        assert [r.value for r in batch.get(tp, [])] == expected


async def test_the_workers_consumers_are_guarded_and_top_up_as_configured(
    services: Services,
) -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
            "STOCKWORKER_BATCH_TOP_UP_MS": "7",
        }
    )
    broker = _broker(settings, None)
    await broker.connect()
    try:
        builder = broker.config.broker_config.builder
        assert isinstance(builder, partial) and builder.func is GuardedConsumer
        assert builder.keywords["top_up_ms"] == 7
    finally:
        await broker.stop()
    assert Settings.from_env({}).batch_top_up_ms == 3
    with pytest.raises(ConfigurationError, match="STOCKWORKER_BATCH_TOP_UP_MS"):
        Settings.from_env({"STOCKWORKER_BATCH_TOP_UP_MS": "1001"})


async def test_a_consumer_stopped_during_a_top_up_hands_nothing_out(services: Services) -> None:
    """Its offsets were committed for the last time as it stopped: records handed out
    now could never be committed, so they stay unread for the next owner."""
    async with producer_and_consumer(services, top_up_ms=1_000) as (producer, consumer, topic):
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        reading = await waiting_in_a_top_up(consumer, producer, tp, b"a")
        await consumer.stop()
        with pytest.raises(ConsumerStoppedError):
            await reading


async def test_records_read_for_a_new_assignment_during_a_top_up_are_handed_out_once(
    services: Services,
) -> None:
    """The assignment changes while a batch is topped up: what the first read took under
    the old one is dropped, what the top-up read under the new one is handed out, and
    nothing of the new assignment is skipped (a dropped top-up would leave its partition
    moved past records never handed out)."""
    async with producer_and_consumer(services, top_up_ms=1_000) as (producer, consumer, topic):
        old, new = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer.assign([old])
        reading = await waiting_in_a_top_up(consumer, producer, old, b"old")
        consumer.assign([new])
        await producer.send_and_wait(new.topic, b"new", partition=new.partition)
        handed_out = values(await reading)
        for _ in range(6):
            handed_out.extend(values(await consumer.getmany(timeout_ms=500)))
        assert [(r.partition, r.value) for r in handed_out] == [(1, b"new")]


async def test_a_fetch_failing_across_a_rebalance_goes_back_to_the_committed_offsets(
    services: Services,
) -> None:
    """A fetch started under one assignment fails after a new one arrived: the start
    positions it noted are the old assignment's, and putting a partition back there
    could move it forward, past records after the committed offset."""
    group = f"guarded-{uuid.uuid4().hex[:8]}"
    async with producer_and_consumer(services, group_id=group) as (producer, consumer, topic):
        tp = TopicPartition(topic, 0)
        for i in range(10):
            await producer.send_and_wait(topic, f"r{i}".encode(), partition=0)
        consumer.assign([tp])
        taken: list[Any] = []
        for _ in range(40):
            taken.extend(values(await consumer.getmany(timeout_ms=500, max_records=8 - len(taken))))
            if len(taken) == 8:
                break
        assert len(taken) == 8
        await consumer.commit({tp: 3})  # r3 to r7 handed out, not yet committed
        fetcher = consumer._fetcher
        original = fetcher.fetched_records

        async def reassigned_then_fails(*args: Any, **kwargs: Any) -> Any:
            consumer.assign([tp])  # a new assignment: it starts at the committed offset
            assert await consumer.position(tp) == 3
            raise RuntimeError("the fetch failed after the rebalance")

        fetcher.fetched_records = reassigned_then_fails
        with pytest.raises(KafkaError):
            await consumer.getmany(timeout_ms=500)
        fetcher.fetched_records = original
        rest = await drain(consumer, 7, None)
    assert [r.value for r in rest] == [f"r{i}".encode() for i in range(3, 10)]
