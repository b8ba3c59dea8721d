"""A record with a header key that is not UTF-8 is dead-lettered with the key's bytes."""

from __future__ import annotations

import base64

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
