"""Replaying commands from the commands topic through the worker's own path.

A replay classifies the selected records first (the plan), then feeds them to the same
CommandBatchService the worker uses, so the inbox deduplicates exactly as it does for a
redelivery: a command already processed only re-publishes its stored result.

- Undecodable records are skipped, not dead-lettered again: they went to the
  dead-letter topic when the worker first read them (`dlq redrive` deals with them).
- Invalid commands (decodable, but failing the schema) are never in the inbox; they are
  fed as the worker does for a redelivery, so their rejection is published again. They
  change no state, so they need no --allow-reapply.
- Records are applied in timestamp order across partitions, each partition's in offset
  order (`in_order`, the same merge as `rebuild`): a location or item configured on one
  partition is applied before the commands on another that use it.
- A command id seen earlier in the range is counted once as to apply; its repeats are
  duplicates (they only re-publish the result the first produces).
- `--what-if` runs in one transaction that is rolled back. It takes every lock of the
  selection once, up front, in the worker's sorted order, and is refused when they are
  more than one transaction's lock budget (`LockBudgetExceeded`).
- `--execute` asks the inbox again before each batch: a command that left it since the
  plan (inbox retention) stops the replay unless re-applying is allowed (`NotInInbox`).

`rebuild` replays the whole topic into an empty database. The reservation expiries the
worker's sweeper applied are not on the topic: they are read from the live database's
ledger and applied right after the command that made the version before them on their
position (the same command id and moment as the sweeper's, so the same result).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID

import orjson

from stockworker.contract.commands import AnyCommand, ExpireLot, ExpireReservation
from stockworker.domain.decoding import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Decoded,
    InvalidCommand,
    Undecodable,
)
from stockworker.domain.footprint import Footprint, footprint
from stockworker.domain.position import Position, PositionKey
from stockworker.service.batch_state import BatchReport, lock_names
from stockworker.service.command_batch import CommandBatchService, decode_record
from stockworker.service.expiry import expiry_command
from stockworker.service.loops import Backoff, retry
from stockworker.service.lot_expiry import lot_expiry_command
from stockworker.service.ports import (
    DueLot,
    DueReservation,
    InboundRecord,
    OutboxMessage,
    StateChanges,
    UnitOfWorkFactory,
)

T = TypeVar("T")

IN_INBOX = "in_inbox"
TO_APPLY = "to_apply"
REPEATED = "repeated"
INVALID = "invalid"
UNDECODABLE = "undecodable"
FILTERED_OUT = "filtered_out"
CATEGORIES = (IN_INBOX, TO_APPLY, REPEATED, INVALID, UNDECODABLE, FILTERED_OUT)

# A record of the commands topic with its timestamp (the broker's or the producer's).
Timed = tuple[datetime, InboundRecord]
Ranges = Mapping[int, tuple[int, int]]  # partition: [first offset, one past the last)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records of the range are replayed: all when no filter is given; else those
    whose SKU is one of `skus`, whose type is one of `types`, whose key is `key` and
    whose own timestamp is at or after `since` and before `until`."""

    skus: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    key: bytes | None = None
    since: datetime | None = None
    until: datetime | None = None

    def wants(self, record: InboundRecord, decoded: Decoded, at: datetime | None = None) -> bool:
        if self.key is not None and record.key != self.key:
            return False
        if at is not None and (
            (self.since is not None and at < self.since)
            or (self.until is not None and at >= self.until)
        ):
            return False  # inside the offset range, but its timestamp is out of order
        if not self.skus and not self.types:
            return True
        if isinstance(decoded, Undecodable):
            return False  # neither SKU nor type can be told
        if isinstance(decoded, InvalidCommand):
            sku, type_ = decoded.sku, decoded.command_type
        else:
            sku, type_ = getattr(decoded, "sku", None), decoded.type
        if self.skus and sku not in self.skus:
            return False
        return not self.types or type_ in self.types


class Inbox(Protocol):
    async def holding(self, command_ids: Sequence[UUID]) -> set[UUID]:
        """Those of `command_ids` the inbox (processed_command) holds."""


@dataclass
class Plan:
    """What a replay would do, counted per category before anything runs."""

    ranges: dict[int, tuple[int, int]]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    # The first few commands that would be applied (not in the inbox), as "p@offset id".
    to_apply_sample: list[str] = field(default_factory=list)
    # The advisory locks the selected commands take (as the worker names them), kept up
    # to `lock_cap`; `locks_over` when there are more.
    locks: set[str] = field(default_factory=set)
    lock_cap: int = 100_000
    locks_over: bool = False

    @property
    def selected(self) -> int:
        return sum(self.counts[c] for c in (IN_INBOX, TO_APPLY, REPEATED, INVALID))

    def add_locks(self, names: Sequence[str]) -> None:
        if self.locks_over:
            return
        self.locks.update(names)
        if len(self.locks) > self.lock_cap:
            self.locks_over = True
            self.locks.clear()  # only "more than the cap" matters now

    def document(self) -> dict[str, Any]:
        return {
            "ranges": {str(p): {"from": a, "to": b - 1} for p, (a, b) in self.ranges.items()},
            "counts": dict(self.counts),
            "to_apply_sample": list(self.to_apply_sample),
        }


async def make_plan(
    batches: AsyncIterable[Sequence[Timed]],
    ranges: Ranges,
    selection: Selection,
    inbox: Inbox,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    sample: int = 20,
    lock_cap: int = 100_000,
) -> Plan:
    """Count the records of `batches` (in the order they would be applied) per category.
    A command id not in the inbox is counted once as to apply; a record repeating it
    later in the range as repeated (it would only re-publish the first one's result)."""
    plan = Plan(ranges=dict(ranges), lock_cap=lock_cap)
    to_apply: set[UUID] = set()
    async for records in batches:
        commands: list[tuple[InboundRecord, AnyCommand]] = []
        for at, record in records:
            decoded = decode_record(record, max_bytes)
            if not selection.wants(record, decoded, at):
                plan.counts[FILTERED_OUT] += 1
            elif isinstance(decoded, Undecodable):
                plan.counts[UNDECODABLE] += 1
            elif isinstance(decoded, InvalidCommand):
                plan.counts[INVALID] += 1
            else:
                commands.append((record, decoded))
                plan.add_locks(lock_names(footprint(decoded)))
        held = await inbox.holding([c.command_id for _, c in commands]) if commands else set()
        for record, command in commands:
            if command.command_id in held:
                plan.counts[IN_INBOX] += 1
            elif command.command_id in to_apply:
                plan.counts[REPEATED] += 1
            else:
                to_apply.add(command.command_id)
                plan.counts[TO_APPLY] += 1
                if len(plan.to_apply_sample) < sample:
                    plan.to_apply_sample.append(
                        f"{record.partition}@{record.offset} {command.type} {command.command_id}"
                    )
    return plan


class LockBudgetExceeded(Exception):
    """A --what-if would hold more locks in its one transaction than the budget."""

    def __init__(self, plan: Plan, budget: int) -> None:
        self.budget = budget
        count = f"more than {plan.lock_cap}" if plan.locks_over else str(len(plan.locks))
        super().__init__(
            f"--what-if would hold {count} locks (positions, PO lines, reservations, items) in one "
            f"transaction, more than STOCKWORKER_MAX_LOCKS_PER_TRANSACTION ({budget}): "
            "narrow the range (offsets, --since/--until, --sku, --type, --key)"
        )


def what_if_locks(plan: Plan, budget: int) -> list[str]:
    """The locks a --what-if takes up front, or LockBudgetExceeded."""
    if plan.locks_over or len(plan.locks) > budget:
        raise LockBudgetExceeded(plan, budget)
    return sorted(plan.locks)


@dataclass(frozen=True, slots=True)
class Retrying:
    """Transient failures (the database or broker away) are retried with backoff, as the
    worker retries them; a batch redone after one is deduplicated by the inbox."""

    retry_on: Callable[[BaseException], bool] = lambda exc: False
    backoff: Backoff = field(default_factory=Backoff)
    describe: Callable[[BaseException], str] = repr

    async def __call__(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        done = await retry(
            operation,
            retry_on=self.retry_on,
            backoff=self.backoff,
            what=what,
            describe=self.describe,
        )
        assert done is not None  # None only when stopped, and nothing stops it
        return done


class Pace:
    """At most `rate` records a second on average (no limit when rate is None)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._started = clock()
        self._done = 0

    def batch_size(self, default: int) -> int:
        return default if self._rate is None else max(1, min(default, int(self._rate)))

    async def before(self, n: int) -> None:
        if self._rate is not None:
            due = self._started + self._done / self._rate
            wait = due - self._clock()
            if wait > 0:
                await self._sleep(wait)
        self._done += n


def chunks(records: Sequence[T], size: int) -> list[Sequence[T]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def _selected(
    records: Sequence[Timed], selection: Selection, max_bytes: int
) -> list[tuple[InboundRecord, Decoded]]:
    """The records a replay feeds to the service: wanted and decodable."""
    out: list[tuple[InboundRecord, Decoded]] = []
    for at, record in records:
        decoded = decode_record(record, max_bytes)
        if selection.wants(record, decoded, at) and not isinstance(decoded, Undecodable):
            out.append((record, decoded))
    return out


class NotInInbox(Exception):
    """--execute met commands that are not in the inbox (inbox retention removed them
    after the plan) without leave to re-apply them. What ran before stays applied."""

    def __init__(self, done: BatchReport, missing: Sequence[str]) -> None:
        self.done = done
        self.missing = list(missing)
        super().__init__(
            f"{len(missing)} of the next batch's commands are no longer in the inbox (inbox "
            f"retention since the plan?), e.g. {missing[0]}: stopped before that batch. "
            f"{done.applied} applied, {done.rejected} rejected and {done.duplicates} "
            "duplicates before the stop stay so. Check with --what-if, then add "
            "--allow-reapply"
        )


async def replay(
    service: CommandBatchService,
    batches: AsyncIterable[Sequence[Timed]],
    selection: Selection,
    pace: Pace,
    batch_size: int = 500,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    progress: Callable[[int], None] = lambda n: None,
    retrying: Retrying | None = None,
    inbox: Inbox | None = None,
) -> BatchReport:
    """Feed the selected records to the worker's service, in the order given (`in_order`).

    With `inbox`, every command of a batch must still be in it when the batch starts:
    else NotInInbox, before that batch (a command repeated in the range counts once it
    has been applied)."""
    again = retrying or Retrying()
    report = BatchReport()
    async for records in batches:
        wanted = _selected(records, selection, max_bytes)
        for chunk in chunks(wanted, pace.batch_size(batch_size)):
            if inbox is not None:
                await _still_in(inbox, chunk, report)
            await pace.before(len(chunk))
            report += await again(
                partial(service.process, [r for r, _ in chunk]), "replaying a batch"
            )
            progress(len(chunk))
    return report


async def _still_in(
    inbox: Inbox, chunk: Sequence[tuple[InboundRecord, Decoded]], done: BatchReport
) -> None:
    commands = [(r, d) for r, d in chunk if not isinstance(d, (InvalidCommand, Undecodable))]
    if not commands:
        return
    held = await inbox.holding([d.command_id for _, d in commands])
    missing = [
        f"{r.partition}@{r.offset} {d.type} {d.command_id}"
        for r, d in commands
        if d.command_id not in held
    ]
    if missing:
        raise NotInInbox(done, missing)


# The order records are applied in: merged by time across partitions.


class CommandSource(Protocol):
    def read(self, ranges: Ranges) -> AsyncIterable[Sequence[Timed]]:
        """The records of [start, end) per partition, each partition's in offset order;
        offsets holding no record (transaction markers, retention) are skipped."""


async def record_ends(source: CommandSource, ranges: Ranges, window: int = 32) -> dict[int, int]:
    """Per partition of `ranges`: one past the offset of its last record in the range
    (partitions whose range holds none are left out). The range's end can be a
    transaction marker, which is never read: the merge must know the real last record to
    stop waiting for the partition. Reads the ranges' tails, backwards until found."""
    found: dict[int, int] = {}
    looking = {p: (a, b) for p, (a, b) in ranges.items() if b > a}
    while looking:
        tails = {p: (max(a, b - window), b) for p, (a, b) in looking.items()}
        async for batch in source.read(tails):
            for _, record in batch:
                p = record.partition
                if p in tails and record.offset < tails[p][1]:
                    found[p] = max(found.get(p, 0), record.offset + 1)
        looking = {
            p: (a, tails[p][0])
            for p, (a, _) in looking.items()
            if p not in found and tails[p][0] > a
        }
        window *= 4
    return found


def in_order(source: CommandSource, ranges: Ranges) -> AsyncIterator[list[Timed]]:
    """The records of `ranges` in the order a replay applies them (`merged_by_time`)."""

    async def ordered() -> AsyncIterator[list[Timed]]:
        ends = await record_ends(source, ranges)
        if not ends:
            return
        wanted = {p: (ranges[p][0], end) for p, end in ends.items()}
        async for batch in merged_by_time(source.read(wanted), ends):
            yield batch

    return ordered()


# --what-if and --execute, over the ports the entry point gives.


class WriteSink(Protocol):
    def committed(
        self, changes: Sequence[StateChanges], messages: Sequence[OutboxMessage]
    ) -> None: ...


class Scratch(Protocol):
    def rolled_back(
        self, sink: WriteSink, lock_first: Collection[str]
    ) -> AbstractAsyncContextManager[UnitOfWorkFactory]:
        """Units of work that are savepoints of one transaction rolled back at the end,
        which first takes the advisory locks `lock_first` (sorted, as the worker does)."""


async def what_if(
    plan: Plan,
    source: CommandSource,
    selection: Selection,
    scratch: Scratch,
    build: Callable[[UnitOfWorkFactory], CommandBatchService],
    lock_budget: int,
    batch_size: int = 500,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> tuple[BatchReport, Written]:
    """Apply the plan's selection in a transaction that is rolled back; what it wrote.

    Its locks are held until the rollback, so they are taken all at once, first, in
    sorted order (later batches take none they do not hold: no lock cycle with the
    worker), and refused above the budget (LockBudgetExceeded) rather than fill
    PostgreSQL's shared lock table."""
    locks = what_if_locks(plan, lock_budget)
    written = Written()
    async with scratch.rolled_back(written, locks) as unit_of_work:
        report = await replay(
            build(unit_of_work),
            in_order(source, plan.ranges),
            selection,
            Pace(None),
            batch_size,
            max_bytes,
        )
    return report, written


async def execute(
    plan: Plan,
    source: CommandSource,
    selection: Selection,
    service: CommandBatchService,
    inbox: Inbox,
    allow_reapply: bool,
    pace: Pace,
    batch_size: int = 500,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    progress: Callable[[int], None] = lambda n: None,
    retrying: Retrying | None = None,
) -> BatchReport:
    """Apply the plan's selection. Without `allow_reapply` the inbox is asked again
    before each batch (NotInInbox: it changed since the plan)."""
    return await replay(
        service,
        in_order(source, plan.ranges),
        selection,
        pace,
        batch_size,
        max_bytes,
        progress,
        retrying,
        inbox=None if allow_reapply else inbox,
    )


# What the writes of a replay did, for --what-if and the summary of --execute.


@dataclass(frozen=True, slots=True)
class PositionChange:
    key: PositionKey
    before: Position | None
    after: Position

    def document(self) -> dict[str, Any]:
        def quantities(p: Position | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {
                "on_hand": p.on_hand,
                "reserved": p.reserved,
                "picked": p.picked,
                "on_order": p.on_order,
                "back_ordered": p.back_ordered,
                "available": p.available,
                "stock_value": str(p.stock_value),
                "version": p.version,
            }

        return {
            "sku": self.key.sku,
            "location": self.key.location,
            "before": quantities(self.before),
            "after": quantities(self.after),
        }


@dataclass
class Written:
    """Filled by a recording unit of work with what each committed transaction wrote."""

    positions: dict[PositionKey, PositionChange] = field(default_factory=dict)
    messages: list[OutboxMessage] = field(default_factory=list)
    # Messages beyond this many are counted, not kept (a long replay writes millions).
    keep_messages: int = 10_000
    message_count: int = 0

    def committed(self, changes: Sequence[StateChanges], messages: Sequence[OutboxMessage]) -> None:
        for change in changes:
            for before, after in change.positions:
                key = PositionKey(after.sku, after.location)
                first = self.positions.get(key)
                self.positions[key] = PositionChange(key, first.before if first else before, after)
        room = max(self.keep_messages - len(self.messages), 0)
        self.messages.extend(messages[:room])
        self.message_count += len(messages)

    def position_changes(self) -> list[PositionChange]:
        return [self.positions[k] for k in sorted(self.positions)]

    def events(self) -> list[dict[str, Any]]:
        return [message_document(m) for m in self.messages]


def message_document(message: OutboxMessage) -> dict[str, Any]:
    try:
        kind = orjson.loads(message.value).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        kind = None
    return {
        "type": kind,
        "topic": message.topic,
        "key": message.key.decode(errors="replace") if message.key is not None else None,
        "event_id": str(message.event_id),
    }


# Rebuild.


@dataclass(frozen=True, slots=True)
class RecordedExpiry:
    """A reservation or lot expiry a live sweeper applied: its ledger entry, and the
    command that made the version before it on the same position."""

    sku: str
    location: str
    version: int
    command_id: UUID
    occurred_at: datetime
    after_command_id: UUID


@dataclass
class RebuildReport:
    batches: BatchReport = field(default_factory=BatchReport)
    expiries_applied: int = 0
    expiries_not_reproduced: list[str] = field(default_factory=list)


def merged_by_time(
    batches: AsyncIterable[Sequence[Timed]],
    ends: Mapping[int, int],
) -> AsyncIterator[list[Timed]]:
    """The records of the partitions of `ends` (partition: one past the offset of its
    last record, see `record_ends`) in timestamp order, each partition's in offset
    order: the order the worker most likely applied them in, which matters between
    partitions for a location or item configured on one and used on another. Each
    record keeps its own timestamp.

    A record is released once every partition still being read has a later one
    buffered, so memory holds about the partitions' skew in time; a partition is done
    once its last record is read."""

    async def merge() -> AsyncIterator[list[Timed]]:
        queue: list[tuple[datetime, int, int]] = []  # (time, partition, offset)
        by_place: dict[tuple[int, int], Timed] = {}
        latest: dict[int, datetime] = {}
        reading = {p for p, end in ends.items() if end > 0}
        async for batch in batches:
            for at, record in batch:
                p = record.partition
                # Within a partition, times may go back (producer clocks): never reorder.
                moment = max(at, latest.get(p, at))
                latest[p] = moment
                heapq.heappush(queue, (moment, p, record.offset))
                by_place[(p, record.offset)] = (at, record)
                if record.offset >= ends.get(p, 0) - 1:
                    reading.discard(p)
            if reading and not reading <= latest.keys():
                continue  # a partition still read has shown nothing yet
            watermark = min((latest[p] for p in reading), default=None)
            out: list[Timed] = []
            while queue and (watermark is None or queue[0][0] < watermark):
                _, p, o = heapq.heappop(queue)
                out.append(by_place.pop((p, o)))
            if out:
                yield out
        rest: list[Timed] = []
        while queue:
            _, p, o = heapq.heappop(queue)
            rest.append(by_place.pop((p, o)))
        if rest:
            yield rest

    return merge()


async def rebuild(
    service: CommandBatchService,
    unit_of_work: UnitOfWorkFactory,
    batches: AsyncIterable[Sequence[Timed]],
    expiries: Sequence[RecordedExpiry],
    pace: Pace,
    batch_size: int = 500,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    progress: Callable[[int], None] = lambda n: None,
    retrying: Retrying | None = None,
) -> RebuildReport:
    """Apply every decodable record of `batches` (`in_order`), and the live sweeper's
    expiries where they fell."""
    again = retrying or Retrying()
    following: dict[UUID, list[RecordedExpiry]] = {}
    for expiry in expiries:
        following.setdefault(expiry.after_command_id, []).append(expiry)
    report = RebuildReport()
    everything = Selection()
    async for records in batches:
        pending: list[InboundRecord] = []
        for record, decoded in _selected(records, everything, max_bytes):
            pending.append(record)
            command_id = getattr(decoded, "command_id", None)
            if len(pending) >= pace.batch_size(batch_size) or command_id in following:
                await _apply(service, pace, pending, report, progress, again)
                pending = []
            if command_id in following:
                await _expire_after(service, unit_of_work, command_id, following, report, again)
        if pending:
            await _apply(service, pace, pending, report, progress, again)
    for left in following.values():
        report.expiries_not_reproduced.extend(
            f"{e.sku}@{e.location} v{e.version}: {e.command_id} (the command before it was "
            "not replayed)"
            for e in left
        )
    return report


async def _apply(
    service: CommandBatchService,
    pace: Pace,
    records: Sequence[InboundRecord],
    report: RebuildReport,
    progress: Callable[[int], None],
    again: Retrying,
) -> None:
    await pace.before(len(records))
    report.batches += await again(partial(service.process, records), "rebuilding a batch")
    progress(len(records))


async def _expire_after(
    service: CommandBatchService,
    unit_of_work: UnitOfWorkFactory,
    command_id: UUID,
    following: dict[UUID, list[RecordedExpiry]],
    report: RebuildReport,
    again: Retrying,
) -> None:
    """The expiries that followed `command_id` on its positions, and those after them."""
    queue = following.pop(command_id, [])
    while queue:
        expiry = queue.pop(0)
        if await again(partial(_expire, service, unit_of_work, expiry), "expiring"):
            report.expiries_applied += 1
        else:
            report.expiries_not_reproduced.append(
                f"{expiry.sku}@{expiry.location} v{expiry.version}: {expiry.command_id} "
                "(no reservation of the rebuilt position matches it)"
            )
        queue.extend(following.pop(expiry.command_id, []))


async def _expire(
    service: CommandBatchService, unit_of_work: UnitOfWorkFactory, expiry: RecordedExpiry
) -> bool:
    """Apply the sweeper's expiry again: the same command (its id is derived from the
    reservation or lot, so the matching one is found by recomputing it)."""
    key = PositionKey(expiry.sku, expiry.location)
    async with unit_of_work() as uow:
        # The item too: a tracked position's lots are read only with its item.
        state = await uow.load_state(Footprint(positions=(key,), items=(key.sku,)))
        position = state.positions.get(key)
        if position is None:
            return False
        for command in _sweeper_commands(position, expiry.occurred_at):
            if command.command_id == expiry.command_id:
                report = await service.apply_in(uow, [(None, command)], republish_duplicates=False)
                return report.applied == 1
    return False


def _sweeper_commands(position: Position, at: datetime) -> Iterator[ExpireReservation | ExpireLot]:
    """Every expiry the sweepers could have sent for this position at `at`."""
    for reservation in position.reservations.values():
        if reservation.expires_at is None or reservation.expires_at > at:
            continue
        due = DueReservation(
            reservation.reservation_id, position.key, reservation.expires_at, reservation.sequence
        )
        yield expiry_command(due, at)
    for holding in position.holdings.values():
        if holding.expires_on is None:
            continue
        for stage in ("expiring", "expired"):
            lot = DueLot(position.key, holding.id, holding.expires_on, holding.sequence, stage)
            yield lot_expiry_command(lot, at)


_COMPARED = tuple(f.name for f in fields(Position))


def compare_positions(live: Sequence[Position], rebuilt: Sequence[Position]) -> list[str]:
    """Every difference between two databases' positions, one line each."""
    theirs = {PositionKey(p.sku, p.location): p for p in rebuilt}
    ours = {PositionKey(p.sku, p.location): p for p in live}
    lines: list[str] = []
    for key in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(key), theirs.get(key)
        where = f"{key.sku}@{key.location}"
        if a is None:
            lines.append(f"{where}: only in the rebuilt database")
        elif b is None:
            lines.append(f"{where}: missing from the rebuilt database")
        else:
            for name in _COMPARED:
                mine, other = getattr(a, name), getattr(b, name)
                if name in ("picks", "reservations", "holdings"):
                    mine, other = dict(mine), dict(other)
                if mine != other:
                    lines.append(f"{where}: {name} live {mine} rebuilt {other}")
    return lines
