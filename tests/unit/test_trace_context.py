"""A command's W3C trace context travels onto every message it causes."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord
from stockworker.service.record_headers import trace_headers
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
STATE = b"congo=t61rcWkgMzE"


def service(db: FakeDatabase) -> CommandBatchService:
    return CommandBatchService(lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: False)


def record(value: bytes, offset: int, *headers: tuple[str, bytes | None]) -> InboundRecord:
    return InboundRecord(
        topic=TOPICS.commands,
        partition=0,
        offset=offset,
        key=b"SKU-1",
        value=value,
        headers=headers,
    )


def test_only_well_formed_trace_headers_are_carried() -> None:
    assert trace_headers(()) == ()
    assert trace_headers((("traceparent", PARENT), ("other", b"x"))) == (("traceparent", PARENT),)
    assert trace_headers((("tracestate", STATE), ("traceparent", PARENT))) == (
        ("traceparent", PARENT),
        ("tracestate", STATE),
    )
    # No usable traceparent: a tracestate alone means nothing.
    assert trace_headers((("traceparent", b"garbage"), ("tracestate", STATE))) == ()
    assert trace_headers((("traceparent", None),)) == ()
    assert trace_headers((("tracestate", b"x" * 513), ("traceparent", PARENT))) == (
        ("traceparent", PARENT),
    )


async def test_results_and_events_carry_the_commands_trace_context() -> None:
    db = FakeDatabase()
    traced = (("traceparent", PARENT), ("tracestate", STATE))
    await service(db).process(
        [
            record(encode(command("ReceivePOItem", quantity=5)), 0, *traced),
            record(encode(command("PickStock", quantity=99)), 1, *traced),  # rejected
            record(encode(command("PickStock", quantity=1)), 2),  # not traced
            # An identifiable command with a missing field: rejected, not dead-lettered.
            record(
                b'{"type": "PickStock", "command_id": "%s"}' % str(uuid4()).encode(), 3, *traced
            ),
        ]
    )
    by_topic: dict[str, list[tuple[tuple[str, bytes | None], ...]]] = {}
    for m in db.outbox:
        by_topic.setdefault(m.topic, []).append(m.headers[1:])
    # The receipt's result and its StockChanged; the rejection; the untraced pick's result
    # and StockChanged carry nothing; the invalid command's rejection is traced too.
    assert by_topic[TOPICS.results] == [traced, traced, (), traced]
    assert by_topic[TOPICS.changed] == [traced, ()]


async def test_a_redelivery_republishes_the_result_with_its_first_trace_context() -> None:
    db = FakeDatabase()
    receive = encode(command("ReceivePOItem", quantity=5))
    await service(db).process([record(receive, 0, ("traceparent", PARENT))])
    other = b"00-11111111111111111111111111111111-2222222222222222-01"
    await service(db).process([record(receive, 1, ("traceparent", other))])
    results = [m.headers for m in db.outbox if m.topic == TOPICS.results]
    assert results[0] == results[1] == (("type", b"CommandAccepted"), ("traceparent", PARENT))


async def test_the_workers_trace_goes_on_the_messages_and_a_dead_letter_keeps_the_original() -> (
    None
):
    db = FakeDatabase()
    worker_span = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01"),)
    receipt = record(encode(command("ReceivePOItem", quantity=5)), 0, ("traceparent", PARENT))
    junk = record(b"not json", 1, ("traceparent", PARENT), ("other", b"x"))
    await service(db).process(
        [replace(receipt, trace=worker_span), replace(junk, trace=worker_span)]
    )
    [result] = [m for m in db.outbox if m.topic == TOPICS.results]
    [changed] = [m for m in db.outbox if m.topic == TOPICS.changed]
    assert result.headers[1:] == changed.headers[1:] == worker_span
    [dead] = [m for m in db.outbox if m.topic == TOPICS.dead_letters]
    assert dead.headers[:2] == (("traceparent", PARENT), ("other", b"x"))
