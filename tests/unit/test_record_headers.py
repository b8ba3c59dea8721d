"""A record with a header key that is not UTF-8 is dead-lettered with the key's bytes."""

from __future__ import annotations

import base64
from typing import Any

from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
BAD_KEY = b"\xff\xfetrace"


async def test_a_non_utf8_header_key_dead_letters_the_record_with_the_key_in_base64() -> None:
    db = FakeDatabase()
    service = CommandBatchService(lambda: FakeUnitOfWork(db), TOPICS, lambda e: False)
    value = encode(command("ReceivePOItem", quantity=5))
    headers = (
        ("größe", b"ok"),  # UTF-8 beyond ASCII is fine
        (BAD_KEY.decode("utf-8", "surrogateescape"), b"raw-value"),
        ("after", None),
    )
    poisoned = InboundRecord(TOPICS.commands, 3, 41, b"SKU-1", value, headers)
    fine = InboundRecord(TOPICS.commands, 3, 42, b"SKU-1", value, (("größe", b"ok"),))
    report = await service.process([poisoned, fine])
    # The second record is the same command: applied, since the first never was.
    assert (report.dead_lettered, report.applied) == (1, 1)
    [dead] = [m for m in db.outbox if m.topic == TOPICS.dead_letters]
    assert dead.value == value and dead.key == b"SKU-1"
    found = list(dead.headers)
    assert found[:4] == [
        ("größe", b"ok"),
        ("dlq.invalid_header.key_b64", base64.b64encode(BAD_KEY)),
        ("dlq.invalid_header.value", b"raw-value"),
        ("after", None),
    ]
    named = dict(found)
    assert named["dlq.error.code"] == b"HEADER_KEY_NOT_UTF8"
    assert (named["dlq.source.partition"], named["dlq.source.offset"]) == (b"3", b"41")
    # Every key can be stored and published as text now.
    for key, _ in found:
        key.encode("utf-8")
        assert "\x00" not in key


async def test_a_header_key_with_nul_does_not_stop_its_record_being_dead_lettered() -> None:
    """NUL is valid UTF-8, but PostgreSQL's text refuses it: the outbox could not store
    the dead letter, and the batch would fail for ever."""
    db = FakeDatabase()
    service = CommandBatchService(lambda: FakeUnitOfWork(db), TOPICS, lambda e: False)
    record = InboundRecord(TOPICS.commands, 0, 7, b"k", b"not json", (("a\x00b", b"v"),))
    assert (await service.process([record])).dead_lettered == 1
    [dead] = db.outbox
    assert dead.headers[:2] == (
        ("dlq.invalid_header.key_b64", base64.b64encode(b"a\x00b")),
        ("dlq.invalid_header.value", b"v"),
    )


async def test_a_dead_letter_the_database_refuses_is_written_without_the_original_headers() -> None:
    db = FakeDatabase()

    class RefusesHeader(FakeUnitOfWork):
        """A database refusing one header (say, a key a future rule lets through)."""

        async def append_outbox(self, messages: Any) -> None:
            if any(k == "refused" for m in messages for k, _ in m.headers):
                raise ValueError("invalid byte sequence")
            await super().append_outbox(messages)

    service = CommandBatchService(lambda: RefusesHeader(db), TOPICS, lambda e: False)
    record = InboundRecord(TOPICS.commands, 0, 9, b"k", b"not json", (("refused", b"v"),))
    assert (await service.process([record])).dead_lettered == 1
    [dead] = db.outbox
    assert dead.value == b"not json" and dead.key == b"k"
    named = dict(dead.headers)
    assert "refused" not in named
    assert named["dlq.error.code"] == b"PROCESSING_FAILED"
    assert named["dlq.source.offset"] == b"9"
