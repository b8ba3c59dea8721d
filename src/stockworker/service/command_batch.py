"""Applies a batch of command records in one transaction.

Order of work, and why:
1. decode every record (pure; bad ones become dead letters or rejections);
2. lock what the batch writes (positions, purchase-order lines, reservation ids), in
   one stable order (no deadlocks between workers), *before* reading anything, so a
   command another worker is applying concurrently is seen as processed once we hold
   its locks;
3. load that state and the inbox, then decide commands in record order on the
   in-memory state; a rejection is an outcome, not an exception, and never aborts the
   rest of the batch;
4. write the changed state, the ledger, inbox entries and outbox messages; commit.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from stockworker.contract.codes import DeadLetterCode, RejectionCode
from stockworker.contract.commands import AnyCommand
from stockworker.domain.decide import Policy, decide
from stockworker.domain.decoding import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Decoded,
    InvalidCommand,
    Undecodable,
    decode_command,
)
from stockworker.domain.footprint import footprint
from stockworker.domain.idempotency import command_fingerprint, same_command
from stockworker.domain.outcome import Outcome
from stockworker.domain.outcome_events import EventDoc, is_rejection, outcome_events
from stockworker.service.batch_state import (
    DEAD_LETTERED,
    MAX_LOCKS_PER_COMMAND,
    UNKNOWN_TYPE,
    BatchReport,
    BatchState,
    lock_names,
    merged_footprint,
)
from stockworker.service.dead_letters import dead_letter
from stockworker.service.id_rejections import invalid_command_result, reused_id_result
from stockworker.service.messages import event_message, result_message
from stockworker.service.ports import (
    Headers,
    InboundRecord,
    OutboxMessage,
    StoredResult,
    UnitOfWork,
    UnitOfWorkFactory,
)
from stockworker.service.record_headers import carried_trace, undecodable_headers
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


_Entry = tuple[InboundRecord, Decoded]


class CommandBatchService:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        topics: Topics,
        is_transient: Callable[[BaseException], bool],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        policy: Policy | None = None,
        describe_failure: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
        max_locks_per_transaction: int = 2_000,
        is_lock_table_full: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._topics = topics
        self._is_transient = is_transient
        self._describe = describe_failure
        self._lock_budget = max(max_locks_per_transaction, MAX_LOCKS_PER_COMMAND)
        self._is_lock_table_full = is_lock_table_full
        self._max_message_bytes = max_message_bytes
        self._policy = policy or Policy()

    async def process(self, records: Sequence[InboundRecord]) -> BatchReport:
        """Apply `records` exactly once. Transient errors propagate for the caller to retry.

        A batch whose locks would pass the budget is applied in several transactions,
        in record order (a redelivery after a crash between them is deduplicated by
        the inbox). A permanent error (data the database refuses, a data error in our
        own code) must not block the partition: the batch is split, and a single record
        that still fails is dead-lettered with the error, in a transaction of its own.
        """
        entries = [(r, self._decode(r)) for r in records]
        report = BatchReport()
        for chunk in self._within_lock_budget(entries):
            report += await self._apply_or_split(chunk)
        return report

    def _decode(self, record: InboundRecord) -> Decoded:
        return decode_record(record, self._max_message_bytes)

    def _within_lock_budget(self, entries: list[_Entry]) -> list[list[_Entry]]:
        """Consecutive runs of entries, each locking at most the budget."""
        if MAX_LOCKS_PER_COMMAND * len(entries) <= self._lock_budget:
            return [entries] if entries else []
        chunks: list[list[_Entry]] = []
        current: list[_Entry] = []
        held: set[str] = set()
        for entry in entries:
            needed = _locks_of(entry[1])
            if current and len(held | needed) > self._lock_budget:
                chunks.append(current)
                current, held = [], set()
            current.append(entry)
            held |= needed
        chunks.append(current)
        return chunks

    async def _apply_or_split(self, entries: list[_Entry]) -> BatchReport:
        try:
            async with self._unit_of_work() as uow:
                return await self.apply_in(uow, entries)
        except Exception as exc:
            if not self._is_transient(exc):
                return await self._split_after_refusal(entries, exc)
            if len(entries) > 1 and self._is_lock_table_full(exc):
                # Other sessions hold the rest of the shared lock table: take fewer
                # locks at a time rather than retry the same request.
                log.warning("PostgreSQL's lock table is full: %d records in halves", len(entries))
                half = len(entries) // 2
                first = await self._apply_or_split(entries[:half])
                return first + await self._apply_or_split(entries[half:])
            raise

    async def _split_after_refusal(self, entries: list[_Entry], exc: Exception) -> BatchReport:
        # Described, never quoted: the database's message can hold row contents.
        reason = self._describe(exc)
        if len(entries) == 1:
            record = entries[0][0]
            log.error(
                "dead-lettering %s, which cannot be processed: %s",
                _at(record),
                reason,
                extra=_context(entries[0]),
            )
            return await self._dead_letter_failure(record, reason, _type_of(entries[0][1]))
        log.warning(
            "batch of %d failed permanently (%s); one by one now",
            len(entries),
            reason,
            extra={"batch": len(entries)},
        )
        report = BatchReport()
        for entry in entries:
            report += await self._apply_or_split([entry])
        return report

    async def _dead_letter_failure(
        self, record: InboundRecord, reason: str, command_type: str
    ) -> BatchReport:
        code = DeadLetterCode.PROCESSING_FAILED
        try:
            await self._append(self._dead_letter(record, code, reason[:500]))
        except Exception as exc:
            if self._is_transient(exc):
                raise
            # What the database refuses is in the record's own headers: keep its key and
            # value and where it came from, so the partition still moves on.
            refused = self._describe(exc)
            log.error(
                "dead letter of %s refused too (%s): without its headers", _at(record), refused
            )
            bare = replace(record, headers=())
            await self._append(self._dead_letter(bare, code, reason[:500]))
        return BatchReport(
            dead_lettered=1, outcomes=Counter({(command_type, DEAD_LETTERED, code.value): 1})
        )

    def _dead_letter(self, record: InboundRecord, code: DeadLetterCode, why: str) -> OutboxMessage:
        return dead_letter(record, code, why, self._topics, self._max_message_bytes)

    async def _append(self, message: OutboxMessage) -> None:
        async with self._unit_of_work() as uow:
            await uow.append_outbox([message])

    async def apply_in(
        self,
        uow: UnitOfWork,
        entries: Sequence[tuple[InboundRecord | None, Decoded]],
        republish_duplicates: bool = True,
    ) -> BatchReport:
        """Apply decoded commands inside an open unit of work (records only for dead letters)."""
        commands = [d for _, d in entries if not isinstance(d, (InvalidCommand, Undecodable))]
        scope = merged_footprint(commands)
        await uow.lock(lock_names(scope))
        state = await uow.load_state(scope)
        command_ids = [d.command_id for _, d in entries if not isinstance(d, Undecodable)]
        batch = BatchState(
            state=state,
            loaded=dict(state.positions),
            stored=dict(await uow.load_results(command_ids)),
        )
        for record, item in entries:
            if isinstance(item, Undecodable):
                assert record is not None
                batch.outbox.append(self._dead_letter(record, item.code, item.message))
                batch.count_dead_letter(item.code.value)
            elif isinstance(item, InvalidCommand):
                self._invalid(batch, record, item, republish_duplicates)
            else:
                trace = carried_trace(record)
                self._command(batch, item, republish_duplicates, trace)
        await uow.save(batch.changes())
        await uow.save_results(batch.new_results)
        await uow.append_outbox(batch.outbox)
        return batch.report()

    def _duplicate(
        self, batch: BatchState, prior: StoredResult, republish: bool, command_type: str
    ) -> None:
        """A redelivery: the stored result again, nothing else."""
        if republish:
            batch.outbox.append(prior.result)
        batch.count_duplicate(command_type)

    def _invalid(
        self, batch: BatchState, record: InboundRecord | None, item: InvalidCommand, republish: bool
    ) -> None:
        prior = batch.stored.get(item.command_id)
        if prior is not None:
            # Taken as a redelivery: the rules the id was applied under may have been
            # more lenient than today's.
            self._duplicate(batch, prior, republish, item.command_type)
            return
        # Not recorded in the inbox: a corrected command under this id is applied.
        raw = record.value if record is not None and record.value else b""
        trace = carried_trace(record)
        result = invalid_command_result(item, raw)
        batch.outbox.append(result_message(result, self._topics, trace))
        batch.count_rejected(item.command_type, RejectionCode.INVALID_COMMAND.value)

    def _command(
        self, batch: BatchState, item: AnyCommand, republish: bool, trace: Headers
    ) -> None:
        fingerprint = command_fingerprint(item)
        prior = batch.stored.get(item.command_id)
        if prior is not None:
            if same_command(prior.fingerprint, fingerprint):
                self._duplicate(batch, prior, republish, item.type)
            else:
                refusal = reused_id_result(item, prior, fingerprint)
                batch.outbox.append(result_message(refusal, self._topics, trace))
                batch.count_rejected(item.type, RejectionCode.COMMAND_ID_REUSED.value)
            return
        result = self._decide(batch, item, trace)
        if is_rejection(result):
            batch.count_rejected(item.type, str(result["reason_code"]))
        else:
            batch.count_accepted(item.type)
        message = result_message(result, self._topics, trace)
        batch.outbox.append(message)
        batch.stored[item.command_id] = StoredResult(item.command_id, message, fingerprint)
        batch.new_results.append(batch.stored[item.command_id])

    def _decide(self, batch: BatchState, item: AnyCommand, trace: Headers) -> EventDoc:
        decision = decide(batch.state, item, self._policy)
        result, events = outcome_events(item, decision)
        if isinstance(decision, Outcome):
            batch.apply(item, decision)
        batch.outbox.extend(event_message(e, self._topics, trace) for e in events)
        return result


def _type_of(item: Decoded) -> str:
    """The command type, as far as the record tells it (metrics)."""
    if isinstance(item, Undecodable):
        return UNKNOWN_TYPE
    if isinstance(item, InvalidCommand):
        return item.command_type
    return item.type


def _locks_of(item: Decoded) -> set[str]:
    if isinstance(item, (InvalidCommand, Undecodable)):
        return set()
    return set(lock_names(footprint(item)))


def decode_record(record: InboundRecord, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Decoded:
    """What the worker makes of a record: its header keys first, then its value."""
    unreadable = undecodable_headers(record.headers)
    if unreadable is not None:
        return unreadable
    return decode_command(record.value, max_bytes)


def _at(record: InboundRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _context(entry: _Entry) -> dict[str, object]:
    """Where a record is, and which command it holds: for structured logs (never the
    payload's values)."""
    record, decoded = entry
    context: dict[str, object] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    if isinstance(decoded, InvalidCommand | Undecodable):
        return context
    context["command_id"] = str(decoded.command_id)
    sku = getattr(decoded, "sku", None)
    if sku is not None:
        context["sku"] = sku
    return context
