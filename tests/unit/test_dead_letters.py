"""A dead letter always fits what the relay's producer and the dead-letter topic accept."""

from __future__ import annotations

import uuid

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from stockworker.contract.codes import DeadLetterCode
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.dead_letters import DEAD_LETTER_VALUE_KEPT, dead_letter
from stockworker.service.limits import (
    EVENT_ID_HEADER,
    dead_letter_budget,
    published_size,
    record_limit,
    record_size,
)
from stockworker.service.ports import Headers, InboundRecord, OutboxMessage
from stockworker.service.record_headers import printable_headers
from stockworker.service.topics import Topics
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
M = 100_000  # STOCKWORKER_MAX_MESSAGE_BYTES in these tests
DLQ_HEADERS = (
    "dlq.event_id",
    "dlq.error.code",
    "dlq.error.message",
    "dlq.source.topic",
    "dlq.source.partition",
    "dlq.source.offset",
)


def record(
    value: bytes | None, headers: Headers = (), key: bytes | None = b"SKU-1", offset: int = 7
) -> InboundRecord:
    return InboundRecord(TOPICS.commands, 3, offset, key, value, headers)


def aiokafka_size(m: OutboxMessage) -> int:
    """What the relay's producer measures against its max_request_size."""
    headers = [*m.headers, (EVENT_ID_HEADER, str(m.event_id).encode())]
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(m.key, m.value, headers)
    return size


async def dead_letters_of(
    records: list[InboundRecord], max_message_bytes: int = M
) -> list[OutboxMessage]:
    db = FakeDatabase()
    service = CommandBatchService(
        lambda: FakeUnitOfWork(db), TOPICS, lambda e: False, max_message_bytes=max_message_bytes
    )
    await service.process(records)
    return [m for m in db.outbox if m.topic == TOPICS.dead_letters]


def assert_fits_and_keeps_its_origin(dead: OutboxMessage, max_message_bytes: int = M) -> None:
    assert published_size(dead) <= dead_letter_budget(max_message_bytes)
    assert aiokafka_size(dead) <= record_limit(max_message_bytes)
    names = [name for name, _ in dead.headers]
    for name in DLQ_HEADERS:
        assert name in names, name


async def test_a_record_at_the_limit_with_thousands_of_headers_fits_its_dead_letter() -> None:
    # Not JSON, just under the limit, plus 20,000 headers: far over what Kafka accepts.
    value = b"x" * (M - 10)
    headers = tuple((f"trace-{i}", b"v" * 20) for i in range(20_000))
    [dead] = await dead_letters_of([record(value, headers)])

    assert_fits_and_keeps_its_origin(dead)
    found = dict(dead.headers)
    assert found["dlq.error.code"] == b"NOT_JSON"
    assert (found["dlq.source.partition"], found["dlq.source.offset"]) == (b"3", b"7")
    assert dead.value == value  # the value fits: only headers were left out
    assert "dlq.original.size" not in found
    kept = [h for h in dead.headers if h[0].startswith("trace-")]
    assert kept == list(headers[: len(kept)])  # the first ones, in their order
    assert found["dlq.headers.dropped"] == str(len(headers) - len(kept)).encode()
    assert len(kept) > 0


async def test_huge_headers_on_a_small_value_are_trimmed_and_the_value_kept() -> None:
    headers = (("big", b"h" * (3 * M)), ("small", b"s"))
    [dead] = await dead_letters_of([record(b"\xff\xfe", headers)])
    assert_fits_and_keeps_its_origin(dead)
    found = dict(dead.headers)
    assert dead.value == b"\xff\xfe"
    assert found["dlq.headers.dropped"] == b"2"
    assert "big" not in found and "small" not in found


async def test_an_oversized_record_with_a_huge_key_and_headers_still_fits() -> None:
    value = b"{" + b" " * (5 * M) + b"}"
    key = b"k" * (2 * M)
    headers = tuple((f"h{i}", b"v" * 100) for i in range(5_000))
    [dead] = await dead_letters_of([record(value, headers, key=key)])
    assert_fits_and_keeps_its_origin(dead)
    found = dict(dead.headers)
    assert found["dlq.error.code"] == b"MESSAGE_TOO_LARGE"
    assert found["dlq.original.size"] == str(len(value)).encode()
    assert found["dlq.original.key.size"] == str(len(key)).encode()
    assert dead.key is not None and key.startswith(dead.key)
    assert value.startswith(dead.value)


async def test_a_large_record_with_ordinary_headers_is_dead_lettered_whole() -> None:
    value = b"\xff" * M  # exactly at the limit, not UTF-8
    headers = (("traceparent", b"00-abc-def-01"), ("source", b"erp"))
    [dead] = await dead_letters_of([record(value, headers)])
    assert dead.value == value
    assert dead.headers[:2] == headers
    assert not any(
        name in dict(dead.headers) for name in ("dlq.original.size", "dlq.headers.dropped")
    )


async def test_with_the_default_limit_an_oversized_value_keeps_its_first_64_kib() -> None:
    huge = b"{" + b" " * 3_000_000 + b"}"
    [dead] = await dead_letters_of([record(huge)], max_message_bytes=1_000_000)
    assert dead.value == huge[:DEAD_LETTER_VALUE_KEPT]
    assert dict(dead.headers)["dlq.original.size"] == str(len(huge)).encode()


async def test_a_dead_letter_replayed_and_refused_again_gets_its_own_dlq_headers_last() -> None:
    earlier = (("dlq.error.code", b"NOT_JSON"), ("dlq.original.size", b"123456"))
    [dead] = await dead_letters_of([record(b"[1]", earlier)])
    assert dead.headers[:2] == earlier  # kept as they came
    found = dict(dead.headers)  # the last occurrence of a name is this dead letter's
    assert found["dlq.error.code"] == b"NOT_AN_OBJECT"


def test_the_limit_with_the_default_setting_fits_kafkas_defaults() -> None:
    # Kafka's default max.message.bytes and the producer's default max_request_size.
    assert dead_letter_budget(1_000_000) < record_limit(1_000_000) <= 1_048_576


headers_strategy = st.lists(
    st.tuples(
        st.one_of(
            st.text(max_size=30).filter(lambda name: not name.startswith("dlq.")),
            # A key that was not UTF-8, as the Kafka adapter hands it over.
            st.just(b"\xff\xfe-raw".decode("utf-8", "surrogateescape")),
        ),
        st.one_of(st.none(), st.binary(max_size=50), st.just(b"z" * 40_000)),
    ),
    max_size=300,
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    key=st.one_of(st.none(), st.binary(max_size=20), st.just(b"K" * 300_000)),
    value_size=st.one_of(st.integers(0, 2_000), st.integers(0, 400_000)),
    headers=headers_strategy,
    code=st.sampled_from(list(DeadLetterCode)),
    message=st.text(max_size=3000),
    max_message_bytes=st.sampled_from([0, 1_000, 50_000, 200_000]),
)
def test_every_dead_letter_fits_its_budget_and_says_what_it_left_out(
    key: bytes | None,
    value_size: int,
    headers: Headers,
    code: DeadLetterCode,
    message: str,
    max_message_bytes: int,
) -> None:
    value = b"v" * value_size
    original = record(value, headers, key=key)
    dead = dead_letter(original, code, message, TOPICS, max_message_bytes)

    assert dead.topic == TOPICS.dead_letters
    assert_fits_and_keeps_its_origin(dead, max_message_bytes)
    found = dict(dead.headers)
    assert found["dlq.error.code"] == code.value.encode()
    assert value.startswith(dead.value)
    assert (found.get("dlq.original.size") is not None) == (dead.value != value)
    if found.get("dlq.original.size") is not None:
        assert found["dlq.original.size"] == str(len(value)).encode()
    assert (dead.key == key) == ("dlq.original.key.size" not in found)
    markers = ("dlq.original.size", "dlq.original.key.size", "dlq.headers.dropped")
    added = len(DLQ_HEADERS) + sum(1 for name in markers if name in found)
    originals = dead.headers[: len(dead.headers) - added]
    # Keys that cannot be stored as text travel as dlq.invalid_header.* pairs.
    shown = printable_headers(headers)
    assert originals == shown[: len(originals)]
    dropped = len(shown) - len(originals)
    assert found.get("dlq.headers.dropped") == (str(dropped).encode() if dropped else None)


@given(
    key=st.one_of(st.none(), st.binary(max_size=300)),
    value=st.one_of(st.none(), st.binary(max_size=20_000)),
    headers=st.lists(
        st.tuples(st.text(max_size=200), st.one_of(st.none(), st.binary(max_size=300))),
        max_size=200,
    ).map(tuple),
)
def test_record_size_is_what_the_producer_measures(
    key: bytes | None, value: bytes | None, headers: Headers
) -> None:
    expected = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
    assert record_size(key, value, headers) == expected
    message = OutboxMessage(uuid.uuid4(), "t", key, value or b"", headers)
    assert published_size(message) == aiokafka_size(message)
