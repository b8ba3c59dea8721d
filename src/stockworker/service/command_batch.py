"""Applies a batch of command records in one transaction.

Order of work, and why:
1. decode every record (pure; bad ones become dead letters or rejections);
2. lock the positions the batch touches, in one stable order (no deadlocks between
   workers), *before* reading the inbox, so a command another worker is applying
   concurrently is seen as processed once we hold its position;
3. apply commands in record order on in-memory state; a rejection is an outcome, not
   an exception, and never aborts the rest of the batch;
4. write positions, inbox entries and outbox messages, then commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from stockworker.domain.commands import AnyCommand
from stockworker.domain.decide import Change, Rejection, RejectionCode, decide
from stockworker.domain.decoding import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DeadLetterCode,
    Decoded,
    InvalidCommand,
    Undecodable,
    decode_command,
)
from stockworker.domain.events import (
    EVENT_ID_NAMESPACE,
    CommandRejected,
    ResultEvent,
    StockChanged,
    StockEvent,
    outcome_events,
    rejected,
)
from stockworker.domain.position import Position, PositionKey, new_position
from stockworker.service.ports import (
    InboundRecord,
    OutboxMessage,
    StoredResult,
    UnitOfWorkFactory,
)
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchReport:
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_lettered: int = 0

    def __add__(self, other: BatchReport) -> BatchReport:
        return BatchReport(
            self.applied + other.applied,
            self.rejected + other.rejected,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
        )


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


class CommandBatchService:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        topics: Topics,
        is_transient: Callable[[BaseException], bool],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._topics = topics
        self._is_transient = is_transient
        self._max_message_bytes = max_message_bytes

    async def process(self, records: Sequence[InboundRecord]) -> BatchReport:
        """Apply `records` exactly once. Transient errors propagate for the caller to retry.

        A permanent error (a bug, or data the database refuses) must not block the
        partition: the batch is split, and a single record that still fails is
        dead-lettered with the error, in a transaction of its own.
        """
        if not records:
            return BatchReport()
        decoded = [decode_command(r.value, self._max_message_bytes) for r in records]
        try:
            return await self._apply(records, decoded)
        except Exception as exc:
            if self._is_transient(exc):
                raise
            if len(records) == 1:
                log.exception("dead-lettering a record that cannot be processed")
                return await self._dead_letter_failure(records[0], exc)
            log.warning(
                "batch of %d failed permanently (%r); retrying one by one", len(records), exc
            )
            report = BatchReport()
            for record in records:
                report += await self.process([record])
            return report

    async def _dead_letter_failure(self, record: InboundRecord, exc: Exception) -> BatchReport:
        message = f"{type(exc).__name__}: {exc}"[:500]
        async with self._unit_of_work() as uow:
            await uow.append_outbox(
                [dead_letter(record, DeadLetterCode.PROCESSING_FAILED, message, self._topics)]
            )
        return BatchReport(dead_lettered=1)

    async def _apply(self, records: Sequence[InboundRecord], decoded: list[Decoded]) -> BatchReport:
        keys = sorted(
            {
                PositionKey(d.sku, d.location)
                for d in decoded
                if not isinstance(d, (InvalidCommand, Undecodable))
            }
        )
        command_ids = [d.command_id for d in decoded if not isinstance(d, Undecodable)]
        applied = rejected_count = duplicates = dead_lettered = 0
        async with self._unit_of_work() as uow:
            await uow.lock_positions(keys)
            positions: dict[PositionKey, Position] = dict(await uow.load_positions(keys))
            stored: dict[UUID, StoredResult] = dict(await uow.load_results(command_ids))
            changed: dict[PositionKey, Position] = {}
            new_results: list[StoredResult] = []
            outbox: list[OutboxMessage] = []
            for record, item in zip(records, decoded, strict=True):
                if isinstance(item, Undecodable):
                    outbox.append(dead_letter(record, item.code, item.message, self._topics))
                    dead_lettered += 1
                    continue
                prior = stored.get(item.command_id)
                if prior is not None:
                    outbox.append(prior.result)
                    duplicates += 1
                    continue
                if isinstance(item, InvalidCommand):
                    result: ResultEvent = _invalid_command_result(item)
                    events: list[StockEvent] = []
                else:
                    result, events, after = self._decide(item, positions)
                    if after is not None:
                        positions[after.key] = changed[after.key] = after
                if isinstance(result, CommandRejected):
                    rejected_count += 1
                else:
                    applied += 1
                outbox.extend(self._stock_message(e) for e in events)
                result_message = self._result_message(result)
                outbox.append(result_message)
                stored[item.command_id] = StoredResult(item.command_id, result_message)
                new_results.append(stored[item.command_id])
            await uow.save_positions(list(changed.values()))
            await uow.save_results(new_results)
            await uow.append_outbox(outbox)
        return BatchReport(applied, rejected_count, duplicates, dead_lettered)

    @staticmethod
    def _decide(
        command: AnyCommand, positions: dict[PositionKey, Position]
    ) -> tuple[ResultEvent, list[StockEvent], Position | None]:
        key = PositionKey(command.sku, command.location)
        before = positions.get(key) or new_position(key)
        decision = decide(before, command)
        result, events = outcome_events(command, before, decision)
        return result, events, decision.after if isinstance(decision, Change) else None

    def _stock_message(self, event: StockEvent) -> OutboxMessage:
        topic = self._topics.changed if isinstance(event, StockChanged) else self._topics.low_stock
        return OutboxMessage(
            event_id=event.event_id,
            topic=topic,
            key=event.sku.encode(),
            value=event.model_dump_json().encode(),
            headers=(("type", event.type.encode()),),
        )

    def _result_message(self, result: ResultEvent) -> OutboxMessage:
        return OutboxMessage(
            event_id=result.event_id,
            topic=self._topics.results,
            key=str(result.command_id).encode(),
            value=result.model_dump_json().encode(),
            headers=(("type", result.type.encode()),),
        )


def _invalid_command_result(item: InvalidCommand) -> ResultEvent:
    summary = "; ".join(f"{e.field}: {e.message}" for e in item.field_errors[:5])
    return rejected(
        command_id=item.command_id,
        command_type=item.command_type,
        rejection=Rejection(
            RejectionCode.INVALID_COMMAND,
            f"{item.command_type} does not match its schema: {summary}",
            item.field_errors,
        ),
        occurred_at=item.occurred_at,
        sku=item.sku,
        location=item.location,
        current_version=None,
    )
