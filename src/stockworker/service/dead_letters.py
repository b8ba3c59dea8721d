"""Dead letters: records nobody can correlate, kept with their bytes and the cause."""

from __future__ import annotations

import uuid
from uuid import UUID

from stockworker.domain.decoding import DeadLetterCode
from stockworker.domain.events import EVENT_ID_NAMESPACE
from stockworker.service.ports import InboundRecord, OutboxMessage
from stockworker.service.topics import Topics


def dead_letter_id(record: InboundRecord) -> UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"dlq/{record.topic}/{record.partition}/{record.offset}")


# A dead letter must itself be publishable: past the size limit only this much of the
# original value is kept (the original size is in a header), so one huge record can never
# wedge the outbox relay behind a message the broker refuses.
DEAD_LETTER_VALUE_KEPT = 64 * 1024


def dead_letter(
    record: InboundRecord, code: DeadLetterCode, message: str, topics: Topics
) -> OutboxMessage:
    """The original key, bytes and headers, plus `dlq.*` headers saying where and why."""
    event_id = dead_letter_id(record)
    value = record.value or b""
    extra: list[tuple[str, bytes | None]] = [
        ("dlq.event_id", str(event_id).encode()),
        ("dlq.error.code", code.value.encode()),
        ("dlq.error.message", message.encode("utf-8", "replace")),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
    ]
    if code is DeadLetterCode.MESSAGE_TOO_LARGE:
        extra.append(("dlq.original.size", str(len(value)).encode()))
        value = value[:DEAD_LETTER_VALUE_KEPT]
    return OutboxMessage(
        event_id=event_id,
        topic=topics.dead_letters,
        key=record.key,
        value=value,
        headers=record.headers + tuple(extra),
    )
