"""Reading dead letters (stockworker's, Kafka Connect's, Spring's), grouping them, and
building the records a redrive sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from stockworker.contract.codes import DeadLetterCode
from stockworker.service.dead_letter_triage import (
    CONNECT,
    REDRIVE_EDITED,
    REDRIVE_FROM,
    REDRIVE_RUN,
    REDRIVE_SOURCE,
    SPRING,
    STOCKWORKER,
    DeadLetterView,
    EditRefused,
    Selection,
    decode_bytes,
    group_failures,
    message_fingerprint,
    message_template,
    pacing_delay,
    parse_place,
    plan_document,
    read_dead_letter,
    redrive_record,
)
from stockworker.service.dead_letters import dead_letter
from stockworker.service.limits import EVENT_ID_HEADER
from stockworker.service.ports import Headers, InboundRecord
from stockworker.service.redrive import (
    build_records,
    choose,
    plan_counts,
    request_error,
    send_failure,
)
from stockworker.service.topics import Topics

TOPICS = Topics("t.")
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
RUN = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: Headers


def as_read(
    inbound: InboundRecord,
    code: DeadLetterCode,
    message: str,
    offset: int = 5,
    at: datetime = T0,
    max_message_bytes: int = 1_000_000,
) -> Record:
    """The dead letter the worker writes for `inbound`, as read back from the topic."""
    m = dead_letter(inbound, code, message, TOPICS, max_message_bytes)
    headers = (*m.headers, (EVENT_ID_HEADER, str(m.event_id).encode()))  # the relay's
    return Record(m.topic, 2, offset, at, m.key, m.value, headers)


def command_bytes(**fields: object) -> bytes:
    body: dict[str, object] = {
        "type": "AdjustInventory",
        "command_id": str(uuid.uuid4()),
        "sku": "SKU-1",
    }
    body.update(fields)
    return orjson.dumps(body)


def test_a_stockworker_dead_letter_reads_back_whole() -> None:
    value = command_bytes(type="AdjustInventroy")
    inbound = InboundRecord(
        TOPICS.commands, 3, 41, b"SKU-1", value, (("traceparent", b"00-abc"), ("tenant", b"eu"))
    )
    view = read_dead_letter(as_read(inbound, DeadLetterCode.UNKNOWN_TYPE, "unknown type"))
    assert view is not None
    assert (view.writer, view.code, view.message) == (STOCKWORKER, "UNKNOWN_TYPE", "unknown type")
    assert view.source is not None
    assert (view.source.topic, view.source.partition, view.source.offset) == (
        TOPICS.commands,
        3,
        41,
    )
    assert str(view.source) == f"{TOPICS.commands}/3/41"
    # The original headers only: no dlq.* and not the relay's event_id of the dead letter.
    assert view.original_headers == (("traceparent", b"00-abc"), ("tenant", b"eu"))
    assert {k for k, _ in view.dead_letter_headers} >= {"dlq.error.code", "dlq.source.offset"}
    assert not view.trimmed
    assert view.size == len(value)
    assert view.command() is not None
    assert (view.key, view.value) == (b"SKU-1", value)


def test_a_trimmed_dead_letter_says_so() -> None:
    big = b"x" * 200_000
    inbound = InboundRecord(TOPICS.commands, 1, 9, b"K" * 10, big, (("h", b"v" * 50_000),))
    view = read_dead_letter(
        as_read(inbound, DeadLetterCode.MESSAGE_TOO_LARGE, "too large", max_message_bytes=2048)
    )
    assert view is not None
    assert view.trimmed
    assert view.original_size == 200_000
    assert view.size == 200_000
    assert view.headers_dropped == 1
    assert len(view.value or b"") < 200_000
    assert view.command() is None  # a cut value is never read as a command


def test_a_non_utf8_header_key_is_not_sent_back() -> None:
    bad_key = b"\xffkey".decode("utf-8", "surrogateescape")
    inbound = InboundRecord(
        TOPICS.commands, 0, 1, b"SKU-1", command_bytes(), ((bad_key, b"v"), ("ok", b"1"))
    )
    view = read_dead_letter(as_read(inbound, DeadLetterCode.HEADER_KEY_NOT_UTF8, "bad key"))
    assert view is not None
    # printable_headers replaced the key by dlq.invalid_header.* pairs: not originals.
    assert view.original_headers == (("ok", b"1"),)
    assert view.unsendable_headers == (b"\xffkey".hex(),)
    sent = redrive_record(view, RUN)
    assert [k for k, _ in sent.headers if not k.startswith("stockworker.")] == ["ok"]
    # ... and the redrive says which it left out (the key's bytes, in hex).
    assert sent.headers_left_out == ("ff6b6579",)


def test_a_header_key_with_nul_is_left_out_and_counted() -> None:
    inbound = InboundRecord(
        TOPICS.commands, 0, 1, b"SKU-1", command_bytes(), (("a\x00b", b"v"), ("ok", b"1"))
    )
    view = read_dead_letter(as_read(inbound, DeadLetterCode.PROCESSING_FAILED, "db down"))
    assert view is not None
    sent = redrive_record(view, RUN)
    assert [k for k, _ in sent.headers if not k.startswith("stockworker.")] == ["ok"]
    assert sent.headers_left_out == (b"a\x00b".hex(),)


def test_a_whole_original_reread_judges_its_own_header_keys() -> None:
    bad_key = b"\xfe".decode("utf-8", "surrogateescape")
    inbound = InboundRecord(
        TOPICS.commands, 1, 9, b"k", b"x" * 200_000, ((bad_key, b"v"), ("h", b"1"))
    )
    view = read_dead_letter(
        as_read(inbound, DeadLetterCode.MESSAGE_TOO_LARGE, "too large", max_message_bytes=2048)
    )
    assert view is not None
    sent = redrive_record(view, RUN, original=(b"k", b"x" * 200_000, inbound.headers))
    assert sent.headers_left_out == ("fe",)  # once, not also from the dead letter's pairs
    assert sent.headers[0] == ("h", b"1")


CONNECT_HEADERS: Headers = (
    ("traceparent", b"00-xyz"),
    ("__connect.errors.topic", b"stock.commands.v1"),
    ("__connect.errors.partition", b"4"),
    ("__connect.errors.offset", b"1234"),
    ("__connect.errors.connector.name", b"erp-sink"),
    ("__connect.errors.task.id", b"0"),
    ("__connect.errors.stage", b"VALUE_CONVERTER"),
    ("__connect.errors.class.name", b"org.apache.kafka.connect.json.JsonConverter"),
    ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
    ("__connect.errors.exception.message", b"Converting byte[] to Kafka Connect data failed"),
    ("__connect.errors.exception.stacktrace", b"org.apache...DataException\n\tat ..."),
)


def test_a_kafka_connect_dead_letter() -> None:
    record = Record("dlq", 0, 3, T0, b"SKU-9", b"{}", CONNECT_HEADERS)
    view = read_dead_letter(record)
    assert view is not None
    assert view.writer == CONNECT
    assert view.code == "org.apache.kafka.connect.errors.DataException"
    assert view.short_code() == "DataException"
    assert view.message == "Converting byte[] to Kafka Connect data failed"
    assert view.source is not None
    assert (view.source.topic, view.source.partition, view.source.offset) == (
        "stock.commands.v1",
        4,
        1234,
    )
    assert view.details["connector.name"] == "erp-sink"
    assert view.details["stage"] == "VALUE_CONVERTER"
    assert view.original_headers == (("traceparent", b"00-xyz"),)
    assert Selection(codes=("DataException",)).matches(view)
    assert Selection(source_partition=4).matches(view)
    assert not Selection(source_partition=3).matches(view)


def test_a_spring_dead_letter_with_binary_and_text_places() -> None:
    headers: Headers = (
        ("__TypeId__", b"com.example.Command"),
        ("kafka_dlt-original-topic", b"stock.commands.v1"),
        ("kafka_dlt-original-partition", (2).to_bytes(4, "big")),
        ("kafka_dlt-original-offset", (77).to_bytes(8, "big")),
        ("kafka_dlt-original-timestamp", (1_700_000_000_000).to_bytes(8, "big")),
        ("kafka_dlt-original-consumer-group", b"erp"),
        (
            "kafka_dlt-exception-fqcn",
            b"org.springframework.kafka.listener.ListenerExecutionFailedException",
        ),
        ("kafka_dlt-exception-cause-fqcn", b"java.lang.IllegalStateException"),
        ("kafka_dlt-exception-message", b"Listener failed; order 123 not found"),
        ("retry_topic-attempts", (3).to_bytes(4, "big")),
    )
    view = read_dead_letter(Record("dlq", 1, 8, T0, b"SKU-2", b"{}", headers))
    assert view is not None
    assert view.writer == SPRING
    assert view.short_code() == "ListenerExecutionFailedException"
    assert view.message == "Listener failed; order 123 not found"
    assert view.source is not None
    assert (view.source.partition, view.source.offset) == (2, 77)
    assert view.details["original-consumer-group"] == "erp"
    assert view.original_headers == (("__TypeId__", b"com.example.Command"),)
    # Re-published by a tool that wrote them as text.
    as_text = tuple(
        (k, b"2" if k.endswith("partition") else b"77" if k.endswith("offset") else v)
        for k, v in headers
    )
    again = read_dead_letter(Record("dlq", 1, 9, T0, b"SKU-2", b"{}", as_text))
    assert again is not None and again.source is not None
    assert (again.source.partition, again.source.offset) == (2, 77)


def test_spring_places_as_decimal_text_of_the_binary_width() -> None:
    """Text of exactly 4 (partition) or 8 (offset) digits is text, not binary."""
    headers: Headers = (
        ("kafka_dlt-original-topic", b"stock.commands.v1"),
        ("kafka_dlt-original-partition", b"1234"),
        ("kafka_dlt-original-offset", b"12345678"),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
    )
    view = read_dead_letter(Record("dlq", 0, 1, T0, b"k", b"{}", headers))
    assert view is not None and view.source is not None
    assert (view.source.partition, view.source.offset) == (1234, 12345678)
    # Binary of those widths is still binary (here: bytes that are not all digits).
    binary = (
        headers[0],
        ("kafka_dlt-original-partition", (5).to_bytes(4, "big")),
        ("kafka_dlt-original-offset", (12345678).to_bytes(8, "big")),
        headers[3],
    )
    view = read_dead_letter(Record("dlq", 0, 2, T0, b"k", b"{}", binary))
    assert view is not None and view.source is not None
    assert (view.source.partition, view.source.offset) == (5, 12345678)


def test_a_record_without_error_headers_is_not_a_dead_letter() -> None:
    assert read_dead_letter(Record("dlq", 0, 0, T0, b"k", b"{}", (("type", b"x"),))) is None


def test_message_fingerprints_ignore_what_varies() -> None:
    a = "position 'SKU-1'@'WH1' version 17 != 18 for 5f0e2a1c-0d4e-4c3b-9a77-1b2c3d4e5f60"
    b = "position 'SKU-99'@'WH7' version 3 != 4 for 0a0e2a1c-0d4e-4c3b-9a77-1b2c3d4e5f61"
    assert message_template(a) == "position <value>@<value> version <n> != <n> for <uuid>"
    assert message_fingerprint("X", a) == message_fingerprint("X", b)
    assert message_fingerprint("X", a) != message_fingerprint("Y", a)
    assert message_fingerprint("X", a) != message_fingerprint("X", "something else")


def test_groups_count_open_and_first_last_seen() -> None:
    def dl(offset: int, message: str, minutes: int) -> Record:
        inbound = InboundRecord(TOPICS.commands, 0, offset, b"k", b"{}", ())
        return as_read(
            inbound, DeadLetterCode.NOT_JSON, message, offset, T0 + timedelta(minutes=minutes)
        )

    views = [
        v
        for v in map(
            read_dead_letter,
            [dl(1, "bad at 1", 5), dl(2, "bad at 2", 1), dl(3, "other", 3), dl(4, "bad at 9", 9)],
        )
        if v is not None
    ]
    groups = group_failures(views, resolved=[(2, 1)])
    assert [(g.count, g.open, g.template) for g in groups] == [
        (3, 2, "bad at <n>"),
        (1, 1, "other"),
    ]
    first = groups[0]
    assert (first.first_seen, first.last_seen, first.example) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=9),
        "2:4",
    )


def test_selection_filters() -> None:
    inbound = InboundRecord(TOPICS.commands, 3, 1, b"SKU-1", b"{}", ())
    view = read_dead_letter(as_read(inbound, DeadLetterCode.NOT_AN_OBJECT, "x"))
    assert view is not None
    assert Selection().matches(view)
    assert Selection(codes=("NOT_JSON", "NOT_AN_OBJECT")).matches(view)
    assert not Selection(codes=("NOT_JSON",)).matches(view)
    assert Selection(key="SKU-1").matches(view)
    assert not Selection(key="SKU-2").matches(view)
    assert Selection(since=T0, until=T0 + timedelta(seconds=1)).matches(view)
    assert not Selection(until=T0).matches(view)  # until is exclusive
    assert not Selection(since=T0 + timedelta(seconds=1)).matches(view)


def test_a_redriven_record_keeps_key_value_headers_and_says_where_from() -> None:
    value = command_bytes()
    inbound = InboundRecord(TOPICS.commands, 3, 41, b"SKU-1", value, (("traceparent", b"t"),))
    view = read_dead_letter(as_read(inbound, DeadLetterCode.PROCESSING_FAILED, "db down"))
    assert view is not None
    sent = redrive_record(view, RUN)
    assert (sent.key, sent.value, sent.edited, sent.resolution) == (
        b"SKU-1",
        value,
        False,
        "redriven",
    )
    assert sent.command_id == uuid.UUID(orjson.loads(value)["command_id"])
    assert sent.headers == (
        ("traceparent", b"t"),
        (REDRIVE_FROM, f"{TOPICS.dead_letters}/2/5".encode()),
        (REDRIVE_RUN, str(RUN).encode()),
        (REDRIVE_SOURCE, f"{TOPICS.commands}/3/41".encode()),
    )
    assert not any(k.startswith("dlq.") or k == EVENT_ID_HEADER for k, _ in sent.headers)


def test_a_redrive_of_a_redriven_record_replaces_the_old_provenance() -> None:
    old = ((REDRIVE_FROM, b"x/0/1"), (REDRIVE_RUN, b"old"), ("keep", b"1"))
    inbound = InboundRecord(TOPICS.commands, 0, 2, b"k", command_bytes(), old)
    view = read_dead_letter(as_read(inbound, DeadLetterCode.PROCESSING_FAILED, "again"))
    assert view is not None
    headers = redrive_record(view, RUN).headers
    assert [k for k, _ in headers].count(REDRIVE_FROM) == 1
    assert dict(headers)[REDRIVE_RUN] == str(RUN).encode()
    assert headers[0] == ("keep", b"1")


def test_the_whole_original_replaces_a_trimmed_one() -> None:
    inbound = InboundRecord(TOPICS.commands, 1, 9, b"k", b"x" * 200_000, ())
    view = read_dead_letter(
        as_read(inbound, DeadLetterCode.MESSAGE_TOO_LARGE, "too large", max_message_bytes=2048)
    )
    assert view is not None
    sent = redrive_record(view, RUN, original=(b"k", b"x" * 200_000, (("h", b"1"),)))
    assert sent.value == b"x" * 200_000
    assert sent.headers[0] == ("h", b"1")


def test_an_edited_copy_gets_its_own_command_id_when_the_id_was_the_problem() -> None:
    inbound = InboundRecord(TOPICS.commands, 0, 3, b"SKU-1", b'{"type":"AdjustInventory"}', ())
    view = read_dead_letter(as_read(inbound, DeadLetterCode.MISSING_COMMAND_ID, "no id"))
    assert view is not None
    fixed = b'{"type": "AdjustInventory", "sku": "SKU-1", "command_id": "not-a-uuid"}'
    sent = redrive_record(view, RUN, edited=fixed)
    assert sent.edited and sent.resolution == "redriven-edited"
    assert sent.command_id is not None
    body = orjson.loads(sent.value or b"")
    assert body["command_id"] == str(sent.command_id)
    assert body["sku"] == "SKU-1"
    assert dict(sent.headers)[REDRIVE_EDITED] == b"true"
    # The same correction again is the same command; another one is a new command.
    assert redrive_record(view, RUN, edited=fixed).command_id == sent.command_id
    other = redrive_record(view, RUN, edited=fixed.replace(b"SKU-1", b"SKU-2"))
    assert other.command_id not in (None, sent.command_id)
    with pytest.raises(EditRefused):
        redrive_record(view, RUN, edited=b"[1, 2]")


def test_an_edited_copy_keeps_its_id_unless_asked() -> None:
    inbound = InboundRecord(TOPICS.commands, 0, 3, b"SKU-1", command_bytes(type="Adjst"), ())
    view = read_dead_letter(as_read(inbound, DeadLetterCode.UNKNOWN_TYPE, "unknown type"))
    assert view is not None
    kept_id = uuid.uuid4()
    fixed = command_bytes(command_id=str(kept_id))
    assert redrive_record(view, RUN, edited=fixed).value == fixed
    assert redrive_record(view, RUN, edited=fixed).command_id == kept_id
    renewed = redrive_record(view, RUN, edited=fixed, new_command_id=True)
    assert renewed.command_id not in (None, kept_id)


def test_the_plan_fingerprint_document_does_not_depend_on_the_run() -> None:
    inbound = InboundRecord(TOPICS.commands, 0, 3, b"SKU-1", command_bytes(), ())
    view = read_dead_letter(as_read(inbound, DeadLetterCode.PROCESSING_FAILED, "x"))
    assert view is not None
    one = plan_document([redrive_record(view, RUN)], "c")
    two = plan_document([redrive_record(view, uuid.uuid4())], "c")
    assert one == two


def test_places_bytes_and_pacing() -> None:
    assert parse_place("3:1042") == (3, 1042)
    for bad in ("3", "a:1", "-1:2", "3:"):
        with pytest.raises(ValueError, match="PARTITION:OFFSET"):
            parse_place(bad)
    assert decode_bytes(b'{"a": 1}') == {"encoding": "json", "data": {"a": 1}, "size": 8}
    assert decode_bytes(b"plain")["encoding"] == "utf-8"
    raw = decode_bytes(b"\xff\x00")
    assert (raw["encoding"], raw["data"], raw["hex_preview"]) == ("base64", "/wA=", "ff 00")
    assert decode_bytes(None)["encoding"] == "null"
    assert pacing_delay(0, 0.0, 10) == 0.0
    assert pacing_delay(5, 0.1, 10) == pytest.approx(0.4)
    assert pacing_delay(5, 2.0, 10) == 0.0
    assert pacing_delay(1000, 0.0, None) == 0.0


# The redrive's decisions (service/redrive.py) --------------------------------------------


@dataclass(frozen=True)
class Prior:
    resolution: str
    audit_id: int


def three_views() -> list[DeadLetterView]:
    views = []
    for offset in (5, 6, 7):
        inbound = InboundRecord(TOPICS.commands, 0, offset, b"SKU-1", command_bytes(), ())
        view = read_dead_letter(
            as_read(inbound, DeadLetterCode.PROCESSING_FAILED, "db down", offset=offset)
        )
        assert view is not None
        views.append(view)
    return views


def test_a_redrive_by_filters_skips_resolved_ones_and_by_place_refuses() -> None:
    views = three_views()
    done = {(2, 6): Prior("redriven", 41)}
    by_filters = choose(views, done, force=False, by_place=False)
    assert by_filters.refusal is None
    assert [v.offset for v in by_filters.send] == [5, 7]
    assert by_filters.counts() == {"selected": 3, "refused_resolved": 1, "forced": 0}

    by_place = choose(views, done, force=False, by_place=True)
    assert by_place.send == ()
    assert by_place.refusal == (
        "already dealt with: 2:6 (redriven by audit 41); nothing sent "
        "(--force to redrive them again)"
    )
    assert by_place.counts()["refused_resolved"] == 1

    every = {v.place: Prior("discarded", 7) for v in views}
    assert choose(views, every, force=False, by_place=False).refusal is not None

    forced = choose(views, done, force=True, by_place=True)
    assert forced.refusal is None and len(forced.send) == 3
    assert forced.counts() == {"selected": 3, "refused_resolved": 0, "forced": 1}
    assert choose(views, {}, force=True, by_place=True).counts()["forced"] == 0


def test_a_refusal_names_five_at_most() -> None:
    views = three_views() * 3  # nine (places repeat: the count is what matters)
    every = {v.place: Prior("redriven", 1) for v in views}
    refusal = choose(views, every, force=False, by_place=True).refusal
    assert refusal is not None and refusal.count("redriven by audit") == 5
    assert " ..." in refusal


def test_records_counts_and_the_failure_text() -> None:
    views = three_views()
    big = InboundRecord(TOPICS.commands, 1, 9, b"k", b"x" * 200_000, ())
    trimmed = read_dead_letter(
        as_read(big, DeadLetterCode.MESSAGE_TOO_LARGE, "too large", 8, max_message_bytes=2048)
    )
    assert trimmed is not None
    choice = choose([*views, trimmed], {}, force=False, by_place=False)
    assert choice.reread() == (trimmed,)
    with pytest.raises(KeyError):  # a trimmed one is never sent as it was cut
        build_records(choice, RUN, {})
    records = build_records(choice, RUN, {trimmed.place: (b"k", b"x" * 200_000, ())})
    assert [r.dead_letter for r in records] == [(2, 5), (2, 6), (2, 7), (2, 8)]
    assert records[-1].value == b"x" * 200_000
    assert plan_counts(choice, records) == {
        "selected": 4,
        "refused_resolved": 0,
        "forced": 0,
        "to_send": 4,
        "reread_whole": 1,
        "edited": 0,
        "headers_left_out": 0,
        "sent": 0,
    }
    text = send_failure(records, records[:1], RuntimeError("too big"))
    assert text == "1 of 4 sent; not sent: 2:6, 2:7, 2:8: RuntimeError: too big"
    assert "marked resolved" not in text  # said only once the resolutions are written


def test_redrive_arguments() -> None:
    assert request_error(1, False, False, False, None) is None
    assert request_error(0, True, False, False, 5.0) is None
    assert "not both" in (request_error(1, True, False, False, None) or "")
    assert "name the dead letters" in (request_error(0, False, False, False, None) or "")
    assert "exactly one" in (request_error(2, False, True, False, None) or "")
    assert "exactly one" in (request_error(0, True, True, False, None) or "")
    assert "--edit FILE" in (request_error(1, False, False, True, None) or "")
    assert "not a positive" in (request_error(1, False, False, False, 0.0) or "")
