"""Reservation expiry: no reservation the database refuses keeps the others waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stockworker.domain.position import PositionKey
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.expiry import ReservationExpiry
from stockworker.service.ports import InboundRecord, StateChanges
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Refused(Exception):
    """What the database answers for one position (a constraint, say)."""


async def test_a_reservation_that_cannot_expire_does_not_hold_back_the_others() -> None:
    db = FakeDatabase()

    class RefusesOnePosition(FakeUnitOfWork):
        async def save(self, changes: StateChanges) -> None:
            if any(p.sku == "BAD" for _, p in changes.positions):
                raise Refused("check constraint")
            await super().save(changes)

    def unit_of_work() -> FakeUnitOfWork:
        return RefusesOnePosition(db) if db.commits >= 1 else FakeUnitOfWork(db)

    service = CommandBatchService(unit_of_work, TOPICS, lambda e: not isinstance(e, Refused))
    made = (NOW - timedelta(hours=1)).isoformat()
    due = (NOW - timedelta(minutes=1)).isoformat()
    bodies: list[dict[str, Any]] = []
    for sku in ("BAD", "GOOD-1", "GOOD-2"):
        bodies.append(command("ReceivePOItem", sku=sku, po_number=f"PO-{sku}", quantity=5))
        bodies.append(
            command(
                "ReserveStock",
                sku=sku,
                reservation_id=f"R-{sku}",
                quantity=2,
                order_ref="O",
                expires_at=due,
                occurred_at=made,
            )
        )
    records = [InboundRecord(TOPICS.commands, 0, i, None, encode(b)) for i, b in enumerate(bodies)]
    await service.process(records)
    assert db.commits == 1
    expiry = ReservationExpiry(
        unit_of_work, service, clock=lambda: NOW,
        is_transient=lambda e: not isinstance(e, Refused), batch_size=2,
    )  # fmt: skip
    report = await expiry.sweep()
    assert report.applied == 2
    assert db.positions[PositionKey("BAD", "WH1")].reserved == 2
    assert db.positions[PositionKey("GOOD-1", "WH1")].reserved == 0
    assert db.positions[PositionKey("GOOD-2", "WH1")].reserved == 0
