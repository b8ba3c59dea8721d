"""Messages as rows of `outbox` and `processed_command` (the inbox), and the channel a
committed outbox write is announced on."""

from __future__ import annotations

import asyncpg

from stockworker.service.ports import OutboxMessage, StoredResult

OUTBOX_CHANNEL = "stockworker_outbox"

OUTBOX_COLUMNS = ("event_id", "topic", "key", "value", "header_keys", "header_values")

PROCESSED_COMMAND_COLUMNS = (
    "command_id",
    "result_event_id",
    "result_topic",
    "result_key",
    "result_value",
    "header_keys",
    "header_values",
    "fingerprint",
)


def message_from_row(
    row: asyncpg.Record, event_id: str, topic: str, key: str, value: str
) -> OutboxMessage:
    """An OutboxMessage from a row of `outbox` or `processed_command` (column names vary)."""
    return OutboxMessage(
        event_id=row[event_id],
        topic=row[topic],
        key=row[key],
        value=row[value],
        headers=tuple(zip(row["header_keys"], row["header_values"], strict=True)),
    )


def header_columns(message: OutboxMessage) -> tuple[list[str], list[bytes | None]]:
    return [k for k, _ in message.headers], [v for _, v in message.headers]


def outbox_record(message: OutboxMessage) -> tuple[object, ...]:
    """A row of `outbox`, in OUTBOX_COLUMNS order."""
    m = message
    return (m.event_id, m.topic, m.key, m.value, *header_columns(m))


def stored_result_from_row(row: asyncpg.Record) -> StoredResult:
    return StoredResult(
        command_id=row["command_id"],
        result=message_from_row(
            row, "result_event_id", "result_topic", "result_key", "result_value"
        ),
        fingerprint=row["fingerprint"],
    )


def stored_result_record(stored: StoredResult) -> tuple[object, ...]:
    """A row of `processed_command`, in PROCESSED_COMMAND_COLUMNS order."""
    return (stored.command_id, *outbox_record(stored.result), stored.fingerprint)
