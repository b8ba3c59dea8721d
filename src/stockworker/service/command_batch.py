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

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from uuid import UUID

from stockworker.contract.codes import DeadLetterCode, RejectionCode
from stockworker.contract.commands import AnyCommand
from stockworker.contract.events import CommandRejected, ResultEvent
from stockworker.domain.decide import Policy, decide
from stockworker.domain.decoding import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Decoded,
    InvalidCommand,
    Undecodable,
    decode_command,
)
from stockworker.domain.footprint import Footprint, footprint
from stockworker.domain.idempotency import command_fingerprint, raw_fingerprint, same_command
from stockworker.domain.ledger import LedgerEntry, ledger_entry
from stockworker.domain.outcome import Outcome, Rejection
from stockworker.domain.outcome_events import command_target, outcome_events, rejected
from stockworker.domain.position import Position, PositionKey
from stockworker.domain.purchasing import PoLineKey
from stockworker.domain.state import StockState
from stockworker.service.dead_letters import dead_letter
from stockworker.service.messages import event_message, result_message
from stockworker.service.ports import (
    InboundRecord,
    OutboxMessage,
    StateChanges,
    StoredResult,
    UnitOfWork,
    UnitOfWorkFactory,
)
from stockworker.service.record_headers import undecodable_headers
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


def merged_footprint(commands: Iterable[AnyCommand]) -> Footprint:
    positions: set[PositionKey] = set()
    po_lines: set[PoLineKey] = set()
    reservations: set[str] = set()
    locations: set[str] = set()
    items: set[str] = set()
    for command in commands:
        f = footprint(command)
        positions.update(f.positions)
        po_lines.update(f.po_lines)
        reservations.update(f.reservations)
        locations.update(f.locations)
        items.update(f.items)
    return Footprint(
        tuple(sorted(positions)),
        tuple(sorted(po_lines)),
        tuple(sorted(reservations)),
        tuple(sorted(locations)),
        tuple(sorted(items)),
    )


def lock_names(f: Footprint) -> list[str]:
    """What a batch must hold exclusively: everything it may write.

    Locations and items are only read by stock commands; their own commands upsert a
    single row, so they need no lock.
    """
    return [
        *(f"position\x00{k.sku}\x00{k.location}" for k in f.positions),
        *(f"po-line\x00{k.po_number}\x00{k.po_line}" for k in f.po_lines),
        *(f"reservation\x00{r}" for r in f.reservations),
    ]


# The most locks one command takes (a transfer's two positions; a position and its PO
# line or reservation): a batch of n commands takes at most n times this many.
MAX_LOCKS_PER_COMMAND = 3

_Entry = tuple[InboundRecord, Decoded]


@dataclass
class _Batch:
    """The in-memory state of one batch and everything it will write."""

    state: StockState
    loaded: dict[PositionKey, Position]
    stored: dict[UUID, StoredResult]
    changed_positions: dict[PositionKey, Position] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    new_results: list[StoredResult] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    touched_po_lines: set[PoLineKey] = field(default_factory=set)
    touched_locations: set[str] = field(default_factory=set)
    touched_items: set[str] = field(default_factory=set)

    def apply(self, command: AnyCommand, outcome: Outcome) -> None:
        self.state.apply(outcome)
        for change in outcome.positions:
            self.changed_positions[change.after.key] = change.after
            self.ledger.append(
                ledger_entry(change, command.command_id, command.type, command.occurred_at)
            )
        if outcome.po_line is not None:
            self.touched_po_lines.add(outcome.po_line.after.key)
        if outcome.location is not None:
            self.touched_locations.add(outcome.location.code)
        if outcome.item is not None:
            self.touched_items.add(outcome.item.sku)

    def changes(self) -> StateChanges:
        return StateChanges(
            positions=[(self.loaded.get(k), p) for k, p in self.changed_positions.items()],
            po_lines=[self.state.po_lines[k] for k in sorted(self.touched_po_lines)],
            locations=[self.state.locations[c] for c in sorted(self.touched_locations)],
            items=[self.state.items[s] for s in sorted(self.touched_items)],
            ledger=self.ledger,
        )


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
        unreadable = undecodable_headers(record.headers)
        if unreadable is not None:
            return unreadable
        return decode_command(record.value, self._max_message_bytes)

    def _within_lock_budget(self, entries: list[_Entry]) -> list[list[_Entry]]:
        """Consecutive runs of entries, each locking at most the budget."""
        if MAX_LOCKS_PER_COMMAND * len(entries) <= self._lock_budget:
            return [entries] if entries else []
        chunks: list[list[_Entry]] = []
        current: list[_Entry] = []
        held: set[str] = set()
        for entry in entries:
            item = entry[1]
            needed = (
                set() if isinstance(item, (InvalidCommand, Undecodable))
                else set(lock_names(footprint(item)))
            )  # fmt: skip
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
            if self._is_transient(exc):
                if len(entries) > 1 and self._is_lock_table_full(exc):
                    # Other sessions hold the rest of the shared lock table: take fewer
                    # locks at a time rather than retry the same request.
                    log.warning("PostgreSQL's lock table is full: applying %d records in "
                                "halves", len(entries))  # fmt: skip
                    half = len(entries) // 2
                    first = await self._apply_or_split(entries[:half])
                    return first + await self._apply_or_split(entries[half:])
                raise
            # Described, never quoted: the database's message can hold row contents.
            reason = self._describe(exc)
            if len(entries) == 1:
                r = entries[0][0]
                log.error(
                    "dead-lettering %s[%d]@%d, which cannot be processed: %s",
                    r.topic, r.partition, r.offset, reason,
                )  # fmt: skip
                return await self._dead_letter_failure(r, reason)
            log.warning("batch of %d failed permanently (%s); retrying one by one",
                        len(entries), reason)  # fmt: skip
            report = BatchReport()
            for entry in entries:
                report += await self._apply_or_split([entry])
            return report

    async def _dead_letter_failure(self, record: InboundRecord, reason: str) -> BatchReport:
        code = DeadLetterCode.PROCESSING_FAILED
        try:
            await self._append(dead_letter(record, code, reason[:500], self._topics,
                                           self._max_message_bytes))  # fmt: skip
        except Exception as exc:
            if self._is_transient(exc):
                raise
            # What the database refuses is in the record's own headers: keep its key and
            # value and where it came from, so the partition still moves on.
            log.error("the dead letter of %s[%d]@%d was refused too (%s); writing it "
                      "without the original headers", record.topic, record.partition,
                      record.offset, self._describe(exc))  # fmt: skip
            bare = replace(record, headers=())
            await self._append(dead_letter(bare, code, reason[:500], self._topics,
                                           self._max_message_bytes))  # fmt: skip
        return BatchReport(dead_lettered=1)

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
        batch = _Batch(
            state=state,
            loaded=dict(state.positions),
            stored=dict(await uow.load_results(command_ids)),
        )
        applied = rejected_count = duplicates = dead_lettered = 0
        for record, item in entries:
            if isinstance(item, Undecodable):
                assert record is not None
                batch.outbox.append(
                    dead_letter(
                        record, item.code, item.message, self._topics, self._max_message_bytes
                    )
                )
                dead_lettered += 1
                continue
            prior = batch.stored.get(item.command_id)
            fingerprint = None if isinstance(item, InvalidCommand) else command_fingerprint(item)
            same = (
                fingerprint is None or prior is None or same_command(prior.fingerprint, fingerprint)
            )
            if prior is not None and same:
                # A redelivery: the stored result again. (An invalid payload under an id
                # that was applied is taken as a redelivery too: the rules it was
                # applied under may have been more lenient.)
                if republish_duplicates:
                    batch.outbox.append(prior.result)
                duplicates += 1
                continue
            if prior is not None:
                assert fingerprint is not None and not isinstance(item, InvalidCommand)
                batch.outbox.append(result_message(_reused(item, prior, fingerprint), self._topics))
                rejected_count += 1
                continue
            if isinstance(item, InvalidCommand):
                # Not recorded in the inbox: a corrected command under this id is applied.
                raw = record.value if record is not None and record.value else b""
                batch.outbox.append(
                    result_message(_invalid_command_result(item, raw), self._topics)
                )
                rejected_count += 1
                continue
            assert fingerprint is not None
            result = self._decide(batch, item)
            if isinstance(result, CommandRejected):
                rejected_count += 1
            else:
                applied += 1
            message = result_message(result, self._topics)
            batch.outbox.append(message)
            batch.stored[item.command_id] = StoredResult(item.command_id, message, fingerprint)
            batch.new_results.append(batch.stored[item.command_id])
        await uow.save(batch.changes())
        await uow.save_results(batch.new_results)
        await uow.append_outbox(batch.outbox)
        return BatchReport(applied, rejected_count, duplicates, dead_lettered)

    def _decide(self, batch: _Batch, item: AnyCommand) -> ResultEvent:
        decision = decide(batch.state, item, self._policy)
        result, events = outcome_events(item, decision)
        if isinstance(decision, Outcome):
            batch.apply(item, decision)
        batch.outbox.extend(event_message(e, self._topics) for e in events)
        return result


def _invalid_command_result(item: InvalidCommand, raw: bytes) -> ResultEvent:
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
        # Its own event id: the same command_id may later carry an accepted result.
        event_kind=f"invalid/{raw_fingerprint(raw).hex()}",
    )


def _reused(command: AnyCommand, prior: StoredResult, fingerprint: bytes) -> ResultEvent:
    """The refusal of a command_id already used for another payload; the first stays."""
    try:
        first = json.loads(prior.result.value)
        what = f"a {first.get('command_type')} of {first.get('sku')!r} at {first.get('location')!r}"
    except ValueError:
        what = "another command"
    sku, location = command_target(command)
    return rejected(
        command_id=command.command_id,
        command_type=command.type,
        rejection=Rejection(
            RejectionCode.COMMAND_ID_REUSED,
            f"command_id {command.command_id} was already used for {what}, with another "
            "payload; nothing was changed: give this command a new command_id",
        ),
        occurred_at=command.occurred_at,
        sku=sku,
        location=location,
        event_kind=f"reused/{fingerprint.hex()}",
    )
