"""A batch never takes more locks in one transaction than its budget allows."""

from __future__ import annotations

from collections.abc import Iterable

from stockworker.contract.commands import COMMAND_TYPES
from stockworker.domain.decoding import decode_command
from stockworker.domain.footprint import footprint
from stockworker.domain.position import PositionKey
from stockworker.service.batch_state import MAX_LOCKS_PER_COMMAND, lock_names
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import _DEFAULTS, command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")


def service(db: FakeDatabase, budget: int) -> CommandBatchService:
    return CommandBatchService(
        lambda: FakeUnitOfWork(db), TOPICS, lambda e: False, max_locks_per_transaction=budget
    )


def records(bodies: list[dict[str, object]]) -> list[InboundRecord]:
    return [InboundRecord(TOPICS.commands, 0, i, None, encode(b)) for i, b in enumerate(bodies)]


async def test_a_batch_over_the_budget_is_applied_in_several_transactions_in_order() -> None:
    db = FakeDatabase()
    bodies = [
        command("ReceivePOItem", sku=f"SKU-{i % 40}", po_number=f"PO-{i}", quantity=1)
        for i in range(200)
    ]
    bodies.append(command("PickStock", sku="SKU-0", quantity=5))  # needs all 5 receipts first
    report = await service(db, budget=25).process(records(bodies))
    assert (report.applied, report.rejected) == (201, 0)
    assert max(db.locks_taken) <= 25
    assert db.commits == len(db.locks_taken) > 1
    assert db.positions[PositionKey("SKU-0", "WH1")].picked == 5
    assert sum(p.on_hand for p in db.positions.values()) == 200


async def test_within_the_budget_a_batch_is_one_transaction() -> None:
    db = FakeDatabase()
    bodies = [command("ReceivePOItem", sku=f"SKU-{i}", po_number=f"PO-{i}") for i in range(50)]
    await service(db, budget=2_000).process(records(bodies))
    assert db.commits == 1


def test_no_command_takes_more_locks_than_the_bound_the_budget_relies_on() -> None:
    for type_ in _DEFAULTS:
        extra = {"reservation_id": "R-1"} if type_ == "PickStock" else {}
        decoded = decode_command(encode(command(type_, **extra)))
        assert isinstance(decoded, COMMAND_TYPES), type_
        assert len(lock_names(footprint(decoded))) <= MAX_LOCKS_PER_COMMAND, type_


class LockTableFull(Exception):
    pass


async def test_a_full_lock_table_makes_the_batch_take_fewer_locks_at_a_time() -> None:
    """The table is shared: other workers may hold most of it. Retrying the same
    request would fail the same way; halves fit."""
    db = FakeDatabase()

    class SmallLockTable(FakeUnitOfWork):
        async def lock(self, names: Iterable[str]) -> None:
            if len(set(names)) > 10:
                raise LockTableFull("out of shared memory")
            await super().lock(names)

    service = CommandBatchService(
        lambda: SmallLockTable(db),
        TOPICS,
        is_transient=lambda e: isinstance(e, LockTableFull),
        is_lock_table_full=lambda e: isinstance(e, LockTableFull),
    )
    bodies = [command("ReceivePOItem", sku=f"SKU-{i}", po_number=f"PO-{i}") for i in range(30)]
    report = await service.process(records(bodies))
    assert report.applied == 30
    assert max(db.locks_taken) <= 10
