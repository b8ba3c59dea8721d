"""The replay's plan, selection, pace, merge by time and position comparison."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from stockworker.domain.position import Position, PositionKey
from stockworker.entrypoints.ops.replay import without_password
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.command_batch import decode_record as decode
from stockworker.service.expiry import expiry_command
from stockworker.service.loops import Backoff
from stockworker.service.lot_expiry import lot_expiry_command
from stockworker.service.ports import (
    DueLot,
    DueReservation,
    InboundRecord,
    OutboxMessage,
    StateChanges,
    UnitOfWorkFactory,
)
from stockworker.service.replay import (
    LockBudgetExceeded,
    NotInInbox,
    Pace,
    Ranges,
    RecordedExpiry,
    Retrying,
    Selection,
    Timed,
    WriteSink,
    Written,
    compare_positions,
    execute,
    in_order,
    make_plan,
    merged_by_time,
    rebuild,
    record_ends,
    replay,
    what_if,
    what_if_locks,
)
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)


def record(body: dict[str, object] | bytes, partition: int = 0, offset: int = 0) -> InboundRecord:
    value = body if isinstance(body, bytes) else encode(body)
    key = None if isinstance(body, bytes) else str(body.get("sku", "")).encode()
    return InboundRecord("stock.commands.v1", partition, offset, key, value)


class FakeInbox:
    def __init__(self, held: set[UUID]) -> None:
        self.held = held
        self.asked: list[list[UUID]] = []

    async def holding(self, command_ids: Sequence[UUID]) -> set[UUID]:
        self.asked.append(list(command_ids))
        return self.held & set(command_ids)


async def batches_of(*batches: list[InboundRecord]) -> AsyncIterator[list[Timed]]:
    """The records, each with the time T0 + its offset in seconds."""
    for batch in batches:
        yield [(T0 + timedelta(seconds=r.offset), r) for r in batch]


async def test_the_plan_counts_each_category_and_asks_the_inbox_per_batch() -> None:
    done = command("AdjustInventory", sku="A")
    new = command("AdjustInventory", sku="A")
    other = command("PickStock", sku="B")
    invalid = {**command("AdjustInventory", sku="A"), "delta": "many"}
    records = [
        record(done, offset=0),
        record(new, offset=1),
        record(other, offset=2),
        record(invalid, offset=3),
        record(b"not json", offset=4),
    ]
    inbox = FakeInbox({UUID(done["command_id"]), UUID(other["command_id"])})

    plan = await make_plan(batches_of(records[:2], records[2:]), {0: (0, 5)}, Selection(), inbox)

    assert plan.counts == {
        "in_inbox": 2,
        "to_apply": 1,
        "repeated": 0,
        "invalid": 1,
        "undecodable": 1,
        "filtered_out": 0,
    }
    assert plan.selected == 4
    assert plan.to_apply_sample == [f"0@1 AdjustInventory {new['command_id']}"]
    assert len(inbox.asked) == 2
    assert plan.document()["ranges"] == {"0": {"from": 0, "to": 4}}


async def test_filters_apply_to_the_decoded_command_and_the_key() -> None:
    a = record(command("AdjustInventory", sku="A"))
    b = record(command("PickStock", sku="B"))
    junk = record(b"\xff")
    by_sku = Selection(skus=frozenset({"A"}))
    by_type = Selection(types=frozenset({"PickStock"}))
    by_key = Selection(key=b"B")
    assert [by_sku.wants(r, decode(r)) for r in (a, b, junk)] == [True, False, False]
    assert [by_type.wants(r, decode(r)) for r in (a, b, junk)] == [False, True, False]
    assert [by_key.wants(r, decode(r)) for r in (a, b, junk)] == [False, True, False]
    # Without filters an undecodable record is selected (then counted as undecodable).
    assert Selection().wants(junk, decode(junk))

    plan = await make_plan(batches_of([a, b, junk]), {0: (0, 3)}, by_sku, FakeInbox(set()))
    assert plan.counts["filtered_out"] == 2
    assert plan.counts["to_apply"] == 1


async def test_pace_waits_so_the_average_rate_holds() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(10, clock=lambda: now[0], sleep=sleep)
    assert pace.batch_size(500) == 10
    for _ in range(3):
        await pace.before(10)
    assert slept == [1.0, 1.0]
    assert Pace(None).batch_size(500) == 500


async def test_merge_by_time_keeps_each_partitions_order_and_interleaves_by_time() -> None:
    def at(partition: int, offset: int, seconds: int) -> tuple[datetime, InboundRecord]:
        return T0 + timedelta(seconds=seconds), InboundRecord("t", partition, offset, None, b"x")

    async def read() -> AsyncIterator[list[tuple[datetime, InboundRecord]]]:
        yield [at(0, 0, 1), at(0, 1, 5), at(0, 2, 3)]  # a producer clock going back
        yield [at(1, 0, 2), at(1, 1, 4)]

    merged = [timed async for batch in merged_by_time(read(), {0: 3, 1: 2}) for timed in batch]
    assert [(r.partition, r.offset) for _, r in merged] == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
    # Each record keeps its own timestamp (the --since/--until filter uses it).
    assert merged[-1][0] == T0 + timedelta(seconds=3)


def position(**fields: object) -> Position:
    base: dict[str, object] = {"sku": "A", "location": "WH1", "on_hand": 5, "version": 2}
    return Position(**{**base, **fields})  # type: ignore[arg-type]


def test_compare_positions_names_every_difference() -> None:
    live = [position(), position(sku="B")]
    rebuilt = [position(on_hand=4, stock_value=Decimal("1.5")), position(sku="C")]
    assert compare_positions(live, rebuilt) == [
        "A@WH1: on_hand live 5 rebuilt 4",
        "A@WH1: stock_value live 0.000000 rebuilt 1.5",
        "B@WH1: missing from the rebuilt database",
        "C@WH1: only in the rebuilt database",
    ]
    assert compare_positions(live, list(live)) == []


def test_written_keeps_the_first_before_and_the_last_after() -> None:
    written = Written()
    first, second, third = position(version=1), position(version=2), position(version=3)
    message = OutboxMessage(uuid.uuid4(), "results", b"k", json.dumps({"type": "X"}).encode())
    written.committed([StateChanges(positions=[(None, first)])], [message])
    written.committed([StateChanges(positions=[(first, second)])], [])
    written.committed([StateChanges(positions=[(second, third)])], [])
    (change,) = written.position_changes()
    assert change.key == PositionKey("A", "WH1")
    assert change.before is None and change.after == third
    assert written.events() == [
        {"type": "X", "topic": "results", "key": "k", "event_id": str(message.event_id)}
    ]


def test_written_keeps_the_first_messages_and_counts_all() -> None:
    written = Written(keep_messages=1)
    messages = [OutboxMessage(uuid.uuid4(), "t", None, b"{}") for _ in range(3)]
    written.committed([], messages)
    assert len(written.events()) == 1
    assert written.message_count == 3


def build(unit_of_work: UnitOfWorkFactory) -> CommandBatchService:
    return CommandBatchService(unit_of_work, Topics("t."), lambda e: False)


def batch_service(db: FakeDatabase) -> CommandBatchService:
    return build(lambda: FakeUnitOfWork(db))


async def test_rebuild_applies_the_sweepers_expiries_where_they_fell() -> None:
    """Live: receive, reserve (expiring), the sweeper's expiry, another reservation.
    The topic holds all but the expiry; the rebuild must reproduce every position."""
    topic = [
        command("ReceivePOItem", quantity=10),
        command(
            "ReserveStock", reservation_id="R-1", quantity=4, expires_at="2026-11-23T10:05:00Z"
        ),
        command("ReserveStock", reservation_id="R-2", quantity=7),  # fits only after expiry
    ]
    records = [record(body, offset=i) for i, body in enumerate(topic)]
    live = FakeDatabase()
    service = batch_service(live)
    await service.process(records[:2])
    key = PositionKey("SKU-1", "WH1")
    reservation = live.positions[key].reservations["R-1"]
    assert reservation.expires_at is not None
    swept_at = T0 + timedelta(hours=1)
    due = DueReservation("R-1", key, reservation.expires_at, reservation.sequence)
    async with FakeUnitOfWork(live) as uow:
        await service.apply_in(uow, [(None, expiry_command(due, swept_at))], False)
    await service.process(records[2:])
    assert live.positions[key].reserved == 7
    expiries = [
        RecordedExpiry(e.sku, e.location, e.version, e.command_id, e.occurred_at, before)
        for before, e in zip(
            (x.command_id for x in live.ledger), live.ledger[1:], strict=False
        )  # one position
        if e.command_type == "ExpireReservation"
    ]
    assert len(expiries) == 1

    target = FakeDatabase()
    report = await rebuild(
        batch_service(target),
        lambda: FakeUnitOfWork(target),
        batches_of(records),
        expiries,
        Pace(None),
    )
    assert report.expiries_applied == 1
    assert report.expiries_not_reproduced == []
    assert compare_positions(list(live.positions.values()), list(target.positions.values())) == []

    # Without the expiry the third reservation is rejected: the positions differ.
    bare = FakeDatabase()
    await rebuild(
        batch_service(bare), lambda: FakeUnitOfWork(bare), batches_of(records), [], Pace(None)
    )
    assert compare_positions(list(live.positions.values()), list(bare.positions.values()))

    # An expiry whose command before it is not replayed is reported.
    lost = FakeDatabase()
    missing = await rebuild(
        batch_service(lost),
        lambda: FakeUnitOfWork(lost),
        batches_of(records[2:]),
        expiries,
        Pace(None),
    )
    assert missing.expiries_applied == 0
    assert len(missing.expiries_not_reproduced) == 1


class Transient(Exception):
    pass


async def test_a_transient_failure_is_retried_and_the_batch_applied_once() -> None:
    db = FakeDatabase()
    service = CommandBatchService(
        lambda: FakeUnitOfWork(db), Topics("t."), lambda e: isinstance(e, Transient)
    )
    db.fail_next_commit = Transient("the database went away")
    retrying = Retrying(lambda e: isinstance(e, Transient), Backoff(0.001, 0.001))
    report = await replay(
        service,
        batches_of([record(command("ReceivePOItem", quantity=5))]),
        Selection(),
        Pace(None),
        retrying=retrying,
    )
    assert report.applied == 1
    assert db.positions[PositionKey("SKU-1", "WH1")].on_hand == 5
    assert db.fail_next_commit is None

    db.fail_next_commit = Transient("again")
    with pytest.raises(Transient):  # not retried unless asked
        await replay(
            service,
            batches_of([record(command("ReceivePOItem", quantity=5))]),
            Selection(),
            Pace(None),
        )


# The reviewer's findings (see the draft docs for the behaviour each pins down).


async def test_a_command_id_repeated_in_the_range_is_counted_once_as_to_apply() -> None:
    body = command("AdjustInventory", sku="A")
    plan = await make_plan(
        batches_of([record(body, offset=0)], [record(body, offset=1), record(body, offset=2)]),
        {0: (0, 3)},
        Selection(),
        FakeInbox(set()),
    )
    assert plan.counts["to_apply"] == 1
    assert plan.counts["repeated"] == 2
    assert plan.selected == 3
    assert len(plan.to_apply_sample) == 1


async def test_since_and_until_filter_each_record_by_its_own_timestamp() -> None:
    # Offsets 0..3 at T0+0s..3s; the selection is [T0+1s, T0+3s).
    records = [record(command("AdjustInventory", sku="A"), offset=i) for i in range(4)]
    window = Selection(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    plan = await make_plan(batches_of(records), {0: (0, 4)}, window, FakeInbox(set()))
    assert plan.counts["to_apply"] == 2
    assert plan.counts["filtered_out"] == 2

    db = FakeDatabase()
    await replay(batch_service(db), batches_of(records), window, Pace(None))
    assert [r.command_id for r in db.results.values()] == [
        UUID(decode_body(r)["command_id"]) for r in records[1:3]
    ]


def decode_body(r: InboundRecord) -> dict[str, str]:
    assert r.value is not None
    body: dict[str, str] = json.loads(r.value)
    return body


async def test_the_plan_counts_the_locks_and_what_if_refuses_above_the_budget() -> None:
    records = [record(command("AdjustInventory", sku=f"S{i}"), offset=i) for i in range(4)] + [
        record(command("TransferStock", sku="S0", to_location="WH2"), offset=4)
    ]
    plan = await make_plan(batches_of(records), {0: (0, 5)}, Selection(), FakeInbox(set()))
    # Four positions at WH1, S0@WH2 of the transfer, and the four items (shared).
    assert len(plan.locks) == 9
    assert what_if_locks(plan, 9) == sorted(plan.locks)
    with pytest.raises(LockBudgetExceeded, match=r"would hold 9 locks .* \(8\): narrow"):
        what_if_locks(plan, 8)
    # The count stops at its cap: above it, only "more than" is known.
    capped = await make_plan(
        batches_of(records), {0: (0, 5)}, Selection(), FakeInbox(set()), lock_cap=3
    )
    assert capped.locks_over and not capped.locks
    with pytest.raises(LockBudgetExceeded, match="more than 3"):
        what_if_locks(capped, 3)


class FakeScratch:
    """A rolled-back transaction: a copy of the database thrown away at the end."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.locked_first: list[list[str]] = []

    @asynccontextmanager
    async def rolled_back(
        self, sink: WriteSink, lock_first: Collection[str]
    ) -> AsyncIterator[UnitOfWorkFactory]:
        self.locked_first.append(list(lock_first))
        scratch = copy.deepcopy(self.db)
        yield lambda: FakeUnitOfWork(scratch)


class ListSource:
    """A partition's records, with holes where the topic holds no record (a
    transaction marker), read in batches of `per_read` records across partitions."""

    def __init__(self, timed: list[Timed], per_read: int = 2) -> None:
        self.timed = timed
        self.per_read = per_read
        self.reads: list[dict[int, tuple[int, int]]] = []
        self.delivered = 0

    async def read(self, ranges: Ranges) -> AsyncIterator[list[Timed]]:
        self.reads.append(dict(ranges))
        wanted = [
            (at, r)
            for at, r in self.timed
            if r.partition in ranges and ranges[r.partition][0] <= r.offset < ranges[r.partition][1]
        ]
        for i in range(0, len(wanted), self.per_read):
            self.delivered = i + self.per_read
            yield wanted[i : i + self.per_read]


def timed(body: dict[str, object], partition: int, offset: int, seconds: int) -> Timed:
    return T0 + timedelta(seconds=seconds), record(body, partition, offset)


async def test_what_if_takes_every_lock_first_sorted_and_changes_nothing() -> None:
    db = FakeDatabase()
    records = [timed(command("AdjustInventory", sku=f"S{i}"), 0, i, i) for i in (3, 1, 2)]
    source = ListSource(records)
    plan = await make_plan(
        in_order(source, {0: (1, 4)}), {0: (1, 4)}, Selection(), FakeInbox(set())
    )
    scratch = FakeScratch(db)
    report, _ = await what_if(plan, source, Selection(), scratch, build, lock_budget=6)
    assert report.applied == 3
    assert (
        scratch.locked_first == [sorted(plan.locks)] and len(plan.locks) == 6
    )  # positions and items
    assert db.results == {} and not db.positions
    with pytest.raises(LockBudgetExceeded):
        await what_if(plan, source, Selection(), scratch, build, lock_budget=5)
    assert len(scratch.locked_first) == 1  # refused before the transaction


async def test_replay_applies_across_partitions_in_time_order() -> None:
    """A location deactivated on partition 1 at 10:00:01, stock received there on
    partition 0 at 10:00:02: in time order the receipt is rejected, as the worker did."""
    close = command("ConfigureLocation", code="WH9", name="Closing", active=False)
    receive = command("ReceivePOItem", sku="A", location="WH9", quantity=5)
    # The reader hands partition 0 first.
    source = ListSource([timed(receive, 0, 0, 2), timed(close, 1, 0, 1)], per_read=1)
    db = FakeDatabase()
    ranges = {0: (0, 1), 1: (0, 1)}
    plan = await make_plan(in_order(source, ranges), ranges, Selection(), FakeInbox(set()))
    report = await execute(
        plan, source, Selection(), batch_service(db), FakeInbox(set()), True, Pace(None)
    )
    assert (report.applied, report.rejected) == (1, 1)
    assert not db.positions  # the receipt was rejected: LOCATION_INACTIVE

    # In the order read (what replay did before) the receipt would be applied.
    read_order = FakeDatabase()
    await replay(batch_service(read_order), source.read(ranges), Selection(), Pace(None))
    assert read_order.positions


async def test_execute_stops_at_a_command_inbox_retention_removed_after_the_plan() -> None:
    bodies = [command("AdjustInventory", sku="A") for _ in range(4)]
    source = ListSource([timed(b, 0, i, i) for i, b in enumerate(bodies)], per_read=4)
    ids = {UUID(str(b["command_id"])) for b in bodies}
    inbox = FakeInbox(set(ids))
    db = FakeDatabase()
    service = batch_service(db)
    # The worker applied them all (the inbox holds them).
    await replay(service, in_order(source, {0: (0, 4)}), Selection(), Pace(None))
    plan = await make_plan(in_order(source, {0: (0, 4)}), {0: (0, 4)}, Selection(), inbox)
    assert plan.counts["to_apply"] == 0
    # Retention removes the third and fourth after the plan.
    inbox.held -= {UUID(str(b["command_id"])) for b in bodies[2:]}
    for r in bodies[2:]:
        del db.results[UUID(str(r["command_id"]))]
    with pytest.raises(
        NotInInbox, match=r"2 of the next batch's .* 0@2 AdjustInventory"
    ) as stopped:
        await execute(plan, source, Selection(), service, inbox, False, Pace(2), batch_size=2)
    assert stopped.value.done.duplicates == 2
    assert "2 duplicates before the stop" in str(stopped.value)
    assert db.positions[PositionKey("A", "WH1")].on_hand == 4  # nothing applied twice
    # With leave to re-apply they are applied.
    again = await execute(plan, source, Selection(), service, inbox, True, Pace(None))
    assert (again.applied, again.duplicates) == (2, 2)
    assert db.positions[PositionKey("A", "WH1")].on_hand == 6


async def test_a_partition_ending_in_a_transaction_marker_does_not_hold_the_merge() -> None:
    # Partition 0: records at offsets 0 and 1, then a commit marker at 2 (end 3).
    # Partition 1: ten records, later in time than partition 0's.
    p0 = [timed(command("AdjustInventory", sku="A"), 0, o, o) for o in (0, 1)]
    p1 = [timed(command("AdjustInventory", sku="B"), 1, o, 10 + o) for o in range(10)]
    ranges = {0: (0, 3), 1: (0, 10)}
    source = ListSource(p0 + p1, per_read=2)
    assert await record_ends(source, ranges, window=1) == {0: 2, 1: 10}

    async def first_release(batches: AsyncIterator[list[Timed]]) -> int:
        """How many records were read when partition 1's first was released."""
        async for batch in batches:
            if any(r.partition == 1 for _, r in batch):
                return source.delivered
        raise AssertionError("nothing released")

    # With the real last records the merge releases partition 1's records as they come.
    assert await first_release(in_order(source, ranges)) < len(p0 + p1)
    # With the range's end (the marker's offset + 1) it would hold them all to the end.
    held = merged_by_time(source.read(ranges), {p: b for p, (_, b) in ranges.items()})
    assert await first_release(held) >= len(p0 + p1)
    # A range holding no record at all is left out.
    assert await record_ends(ListSource([]), {0: (0, 5)}) == {}


def test_the_database_password_is_masked_in_the_user_part_and_the_query() -> None:
    assert without_password("postgresql://owner:s3cret@db:5432/x") == (
        "postgresql://owner:***@db:5432/x"
    )
    masked = without_password("postgresql://owner@db/x?sslmode=require&password=s3cret")
    assert "s3cret" not in masked
    assert masked == "postgresql://owner@db/x?sslmode=require&password=***"
    assert without_password("postgresql://db/x") == "postgresql://db/x"
    assert "p@ss" not in without_password("postgresql://u:p%40ss@db/x?PASSWORD=p@ss")


async def test_rebuild_applies_the_lot_sweepers_expiries_too() -> None:
    """Live: a lot past its date is expired by the sweeper, so a reservation that needs
    it is refused; a rebuild must expire it at the same point to refuse it too."""
    topic = [
        command("ConfigureItem", name="Milk", tracking="lot"),
        command("ReceivePOItem", quantity=5, lot="OLD", expires_on="2026-11-01"),
        command("ReceivePOItem", po_number="PO-2", quantity=3, lot="NEW"),
        command("ReserveStock", reservation_id="R-1", quantity=4),  # only 3 unexpired
    ]
    records = [record(body, offset=i) for i, body in enumerate(topic)]
    live = FakeDatabase()
    service = batch_service(live)
    await service.process(records[:3])
    key = PositionKey("SKU-1", "WH1")
    old = live.positions[key].holdings["OLD"]
    assert old.expires_on is not None
    due = DueLot(key, "OLD", old.expires_on, old.sequence, "expired")
    async with FakeUnitOfWork(live) as uow:
        await service.apply_in(uow, [(None, lot_expiry_command(due, T0))], False)
    await service.process(records[3:])
    assert live.positions[key].reserved == 0
    expiries = [
        RecordedExpiry(e.sku, e.location, e.version, e.command_id, e.occurred_at, before)
        for before, e in zip((x.command_id for x in live.ledger), live.ledger[1:], strict=False)
        if e.command_type == "ExpireLot"
    ]
    assert len(expiries) == 1

    target = FakeDatabase()
    report = await rebuild(
        batch_service(target),
        lambda: FakeUnitOfWork(target),
        batches_of(records),
        expiries,
        Pace(None),
    )
    assert (report.expiries_applied, report.expiries_not_reproduced) == (1, [])
    assert compare_positions(list(live.positions.values()), list(target.positions.values())) == []
    bare = FakeDatabase()
    await rebuild(
        batch_service(bare), lambda: FakeUnitOfWork(bare), batches_of(records), [], Pace(None)
    )
    assert compare_positions(list(live.positions.values()), list(bare.positions.values()))
