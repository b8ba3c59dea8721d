"""Dead letters: records nobody can correlate, kept with their bytes and the cause."""

from __future__ import annotations

import uuid
from uuid import UUID

from stockworker.contract.codes import DeadLetterCode
from stockworker.domain.decoding import DEFAULT_MAX_MESSAGE_BYTES
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.limits import (
    BATCH_HEADER_BYTES,
    EVENT_ID_HEADER,
    RECORD_FIELDS_BYTES,
    bytes_field_size,
    dead_letter_budget,
    header_size,
    varint_size,
)
from stockworker.service.ports import Headers, InboundRecord, OutboxMessage
from stockworker.service.record_headers import printable_headers
from stockworker.service.topics import Topics


def dead_letter_id(record: InboundRecord) -> UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"dlq/{record.topic}/{record.partition}/{record.offset}")


# A record over the size limit keeps at most this much of its value.
DEAD_LETTER_VALUE_KEPT = 64 * 1024
# dlq.error.message is cut to this many bytes.
ERROR_MESSAGE_KEPT = 1000

# Markers of a dead letter that could not keep everything, each with a decimal number:
# the value was cut (its original length in bytes), the key was cut (its original
# length), and how many of the original headers (the last ones) were left out.
ORIGINAL_SIZE = "dlq.original.size"
ORIGINAL_KEY_SIZE = "dlq.original.key.size"
HEADERS_DROPPED = "dlq.headers.dropped"
_MARKER_ROOM = sum(
    header_size(name, b"9" * 20) for name in (ORIGINAL_SIZE, ORIGINAL_KEY_SIZE, HEADERS_DROPPED)
)
_EVENT_ID_HEADER_ROOM = header_size(EVENT_ID_HEADER, b"0" * 36)
# The longest varint of a length below 2**31.
_LENGTH_ROOM = 5


def dead_letter(
    record: InboundRecord,
    code: DeadLetterCode,
    message: str,
    topics: Topics,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> OutboxMessage:
    """The original key, bytes and headers, plus `dlq.*` headers saying where and why.

    A dead letter must itself be publishable, or it would wedge the outbox relay: the
    whole record stays within `dead_letter_budget(max_message_bytes)`. The `dlq.*`
    headers are always kept; past the budget the key and value are cut (with
    `dlq.original.key.size` / `dlq.original.size`) and the last original headers are
    left out (`dlq.headers.dropped`). The full record stays in the source topic at
    `dlq.source.topic` / `dlq.source.partition` / `dlq.source.offset`.
    """
    event_id = dead_letter_id(record)
    error_message = message.encode("utf-8", "replace")[:ERROR_MESSAGE_KEPT]
    own: Headers = (
        ("dlq.event_id", str(event_id).encode()),
        ("dlq.error.code", code.value.encode()),
        ("dlq.error.message", error_message.decode("utf-8", "ignore").encode()),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
    )
    value = record.value or b""
    value_cap = DEAD_LETTER_VALUE_KEPT if code is DeadLetterCode.MESSAGE_TOO_LARGE else len(value)
    budget = dead_letter_budget(max_message_bytes)
    key, value, headers = _fit(
        record.key, value[:value_cap], len(value), printable_headers(record.headers), own, budget
    )
    return OutboxMessage(
        event_id=event_id,
        topic=topics.dead_letters,
        key=key,
        value=value,
        headers=headers,
    )


def _fit(
    key: bytes | None,
    value: bytes,
    original_size: int,
    headers: Headers,
    own: Headers,
    budget: int,
) -> tuple[bytes | None, bytes, Headers]:
    """Key, value and headers within `budget` bytes as `published_size` counts them.

    Priority: the `dlq.*` headers, then the key (up to half of what is left), the value,
    and the original headers in their order, as many as fit.
    """
    fixed = (
        BATCH_HEADER_BYTES
        + RECORD_FIELDS_BYTES
        + varint_size(len(headers) + len(own) + 4)  # the header count, markers included
        + sum(header_size(k, v) for k, v in own)
        + _EVENT_ID_HEADER_ROOM
        + _MARKER_ROOM
    )
    room = max(budget - fixed, 0)
    markers: list[tuple[str, bytes | None]] = []
    if key is not None and bytes_field_size(key) > room // 2:
        markers.append((ORIGINAL_KEY_SIZE, str(len(key)).encode()))
        key = key[: max(room // 2 - _LENGTH_ROOM, 0)]
    room -= bytes_field_size(key)
    kept = max(min(len(value), room - _LENGTH_ROOM), 0)
    if kept < original_size:
        markers.append((ORIGINAL_SIZE, str(original_size).encode()))
    value = value[:kept]
    room -= bytes_field_size(value)
    kept_headers: list[tuple[str, bytes | None]] = []
    for name, header_value in headers:
        room -= header_size(name, header_value)
        if room < 0:
            break
        kept_headers.append((name, header_value))
    if len(kept_headers) < len(headers):
        markers.append((HEADERS_DROPPED, str(len(headers) - len(kept_headers)).encode()))
    return key, value, (*kept_headers, *own, *markers)
