from __future__ import annotations

import json
from typing import Any

import pytest

from stockworker.domain.position import PositionKey
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.dead_letters import DEAD_LETTER_VALUE_KEPT
from stockworker.service.limits import dead_letter_budget, published_size
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
KEY = PositionKey("SKU-1", "WH1")


class Transient(Exception):
    pass


def service(db: FakeDatabase) -> CommandBatchService:
    return CommandBatchService(
        lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: isinstance(e, Transient)
    )


def records(*values: bytes | None) -> list[InboundRecord]:
    return [
        InboundRecord(topic=TOPICS.commands, partition=0, offset=i, key=b"SKU-1", value=v)
        for i, v in enumerate(values)
    ]


def published(db: FakeDatabase, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in db.outbox if m.topic == topic]


async def test_a_batch_applies_in_order_and_a_rejection_does_not_abort_the_rest() -> None:
    db = FakeDatabase()
    report = await service(db).process(
        records(
            encode(command("ReceivePOItem", quantity=5)),
            encode(command("PickStock", quantity=9)),  # rejected: only 5 available
            encode(command("PickStock", quantity=4)),
        )
    )
    assert (report.applied, report.rejected) == (2, 1)
    position = db.positions[KEY]
    assert (position.on_hand, position.picked, position.version) == (5, 4, 2)
    results = published(db, TOPICS.results)
    assert [r["type"] for r in results] == ["CommandAccepted", "CommandRejected", "CommandAccepted"]
    assert [e["version"] for e in published(db, TOPICS.changed)] == [1, 2]
    assert db.commits == 1


async def test_a_duplicate_changes_nothing_and_republishes_the_same_result() -> None:
    db = FakeDatabase()
    receive = encode(command("ReceivePOItem", quantity=5))
    await service(db).process(records(receive))
    first_result = [m for m in db.outbox if m.topic == TOPICS.results]
    report = await service(db).process(records(receive, receive))
    assert report.duplicates == 2
    assert db.positions[KEY].on_hand == 5
    repeats = [m for m in db.outbox if m.topic == TOPICS.results]
    assert len(repeats) == 3
    assert {(m.event_id, m.value) for m in repeats} == {
        (first_result[0].event_id, first_result[0].value)
    }
    assert len(published(db, TOPICS.changed)) == 1


async def test_a_duplicate_within_one_batch_is_applied_once() -> None:
    db = FakeDatabase()
    receive = encode(command("ReceivePOItem", quantity=5))
    report = await service(db).process(records(receive, receive))
    assert (report.applied, report.duplicates) == (1, 1)
    assert db.positions[KEY].on_hand == 5


async def test_undecodable_records_go_to_the_dead_letter_topic_with_their_origin() -> None:
    db = FakeDatabase()
    report = await service(db).process(records(b"\xffnot json", encode(command("ReceivePOItem"))))
    assert (report.dead_lettered, report.applied) == (1, 1)
    [dead] = [m for m in db.outbox if m.topic == TOPICS.dead_letters]
    headers = dict(dead.headers)
    assert dead.value == b"\xffnot json"
    assert headers["dlq.error.code"] == b"NOT_UTF8"
    assert headers["dlq.source.topic"] == TOPICS.commands.encode()
    assert (headers["dlq.source.partition"], headers["dlq.source.offset"]) == (b"0", b"0")


async def test_an_invalid_identifiable_command_is_rejected_with_field_errors() -> None:
    db = FakeDatabase()
    body = command("PickStock", quantity=0)
    await service(db).process(records(encode(body)))
    [result] = published(db, TOPICS.results)
    assert result["type"] == "CommandRejected"
    assert result["command_id"] == body["command_id"]
    assert result["reason_code"] == "INVALID_COMMAND"
    assert [e["field"] for e in result["field_errors"]] == ["quantity"]


async def test_a_transient_failure_propagates_and_leaves_nothing_behind() -> None:
    db = FakeDatabase(fail_next_commit=Transient("connection lost"))
    batch = records(encode(command("ReceivePOItem", quantity=5)))
    with pytest.raises(Transient):
        await service(db).process(batch)
    assert db.positions == {} and db.outbox == [] and db.results == {}
    await service(db).process(batch)
    assert db.positions[KEY].on_hand == 5


async def test_a_permanent_failure_dead_letters_only_the_failing_record() -> None:
    db = FakeDatabase(fail_next_commit=ValueError("database refused it"))
    batch = records(encode(command("ReceivePOItem", quantity=5)), encode(command("PickStock")))
    report = await service(db).process(batch)
    # The whole batch failed once, was split, and each record then went through alone.
    assert (report.applied, report.dead_lettered) == (2, 0)
    assert db.positions[KEY].picked == 1

    db = FakeDatabase()

    class RefusesOneSku(FakeUnitOfWork):
        """The database refusing the rows of one SKU (a constraint), whatever else the
        batch holds."""

        async def save(self, changes: Any) -> None:
            if any(p.sku == "REFUSED" for _, p in changes.positions):
                raise ValueError("check constraint")
            await super().save(changes)

    failing = CommandBatchService(lambda: RefusesOneSku(db), TOPICS, lambda e: False)
    good, bad, after = (
        command("ReceivePOItem", sku="SKU-1", po_number="PO-1", quantity=5),
        command("ReceivePOItem", sku="REFUSED", po_number="PO-2"),
        command("PickStock", sku="SKU-1", quantity=2),
    )
    report = await failing.process(records(encode(good), encode(bad), encode(after)))
    assert (report.applied, report.dead_lettered) == (2, 1)
    [dead] = [m for m in db.outbox if m.topic == TOPICS.dead_letters]
    assert dead.value == encode(bad)
    assert dict(dead.headers)["dlq.error.code"] == b"PROCESSING_FAILED"
    assert dict(dead.headers)["dlq.source.offset"] == b"1"
    assert (db.positions[KEY].on_hand, db.positions[KEY].picked) == (5, 2)
    assert [r["command_id"] for r in published(db, TOPICS.results)] == [
        good["command_id"],
        after["command_id"],
    ]


async def test_an_oversized_record_is_dead_lettered_with_a_publishable_excerpt() -> None:
    db = FakeDatabase()
    huge = b"{" + b" " * 3_000_000 + b"}"
    small_limit = CommandBatchService(
        lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: False, max_message_bytes=1000
    )
    report = await small_limit.process(records(huge))
    assert report.dead_lettered == 1
    [dead] = db.outbox
    headers = dict(dead.headers)
    assert headers["dlq.error.code"] == b"MESSAGE_TOO_LARGE"
    assert headers["dlq.original.size"] == str(len(huge)).encode()
    # At most its first 64 KiB, and no more than fits the limit derived from 1000 bytes.
    assert huge.startswith(dead.value)
    assert 0 < len(dead.value) <= DEAD_LETTER_VALUE_KEPT
    assert published_size(dead) <= dead_letter_budget(1000)
