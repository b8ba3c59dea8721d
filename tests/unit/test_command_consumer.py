"""CommandConsumer with a fake Kafka consumer: what it commits, what it rewinds, when."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from stockworker.adapters.kafka.command_consumer import CommandConsumer
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.loops import Backoff
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.fake_kafka import FakeConsumer, command_record
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
P0, P1, P2 = (TopicPartition(TOPICS.commands, p) for p in range(3))
FAST = Backoff(0.001, 0.01)


class Transient(Exception):
    pass


def record(tp: TopicPartition, offset: int, sku: str = "SKU-1") -> ConsumerRecord[Any, Any]:
    return command_record(tp, offset, command("AdjustInventory", sku=sku, delta=1, reason="FOUND"))


def consumer_of(db: FakeDatabase, **unit_of_work: Any) -> CommandConsumer:
    factory = unit_of_work.get("factory", lambda: FakeUnitOfWork(db))
    service = CommandBatchService(factory, TOPICS, lambda e: isinstance(e, Transient))
    return CommandConsumer(service, lambda e: isinstance(e, Transient), FAST)


async def test_after_the_batch_it_asks_to_commit_one_past_each_partitions_last_record() -> None:
    db = FakeDatabase()
    kafka = FakeConsumer(P0, P1)
    batch = [record(P0, 5), record(P1, 9, "SKU-2"), record(P0, 6), record(P2, 3, "SKU-3")]
    await consumer_of(db).handle(batch, kafka)
    # Partitions revoked meanwhile are left to their new owner by the consumer's
    # background commits (test_background_commits.py).
    assert kafka.commits == [{P0: 7, P1: 10, P2: 4}]
    assert kafka.seeks == {}
    assert db.commits == 1


async def test_a_transient_failure_is_retried_and_committed_once() -> None:
    db = FakeDatabase(fail_next_commit=Transient("connection lost"))
    kafka = FakeConsumer(P0)
    consumer = consumer_of(db)
    await consumer.handle([record(P0, 0), record(P0, 1)], kafka)
    assert kafka.commits == [{P0: 2}]
    assert consumer.total.applied == 2
    assert sum(p.on_hand for p in db.positions.values()) == 2


async def test_an_unexpected_failure_rewinds_the_batch_and_commits_nothing() -> None:
    db = FakeDatabase()

    class Broken(FakeUnitOfWork):
        async def __aenter__(self) -> Broken:
            raise RuntimeError("a bug")

    kafka = FakeConsumer(P0, P1)
    consumer = consumer_of(db, factory=lambda: Broken(db))
    batch = [record(P0, 5), record(P1, 2, "SKU-2"), record(P0, 6)]
    await consumer.handle(batch, kafka)
    assert kafka.commits == []
    assert kafka.seeks == {P0: 5, P1: 2}


async def test_stopping_during_a_retry_leaves_the_batch_uncommitted_to_redo() -> None:
    db = FakeDatabase()

    class AlwaysTransient(FakeUnitOfWork):
        async def __aenter__(self) -> AlwaysTransient:
            raise Transient("database down")

    kafka = FakeConsumer(P0)
    consumer = consumer_of(db, factory=lambda: AlwaysTransient(db))
    handling = asyncio.create_task(consumer.handle([record(P0, 3)], kafka))
    await asyncio.sleep(0.05)
    assert not handling.done()  # still retrying
    consumer.stop()
    await asyncio.wait_for(handling, 1)
    assert (kafka.commits, kafka.seeks) == ([], {P0: 3})
