"""The composition root wires the real service onto substitutes: a fake store, a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from stockworker.bootstrap import build_runtime
from stockworker.config import Settings
from stockworker.domain.position import PositionKey
from tests.support.builders import command
from tests.support.fake_kafka import FakeConsumer, command_record
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_a_runtime_on_a_fake_store_applies_commands_and_expires_by_its_clock() -> None:
    db = FakeDatabase()
    settings = Settings(topic_prefix="t.")
    runtime = await build_runtime(
        settings, unit_of_work=lambda: FakeUnitOfWork(db), clock=lambda: NOW
    )
    assert (runtime.pool, runtime.relay, runtime.retention) == (None, None, None)
    tp = TopicPartition("t.stock.commands.v1", 0)
    made, due = (NOW - timedelta(hours=1)).isoformat(), (NOW - timedelta(minutes=1)).isoformat()
    bodies = [
        command("ReceivePOItem", quantity=5),
        command(
            "ReserveStock",
            reservation_id="R",
            quantity=2,
            order_ref="O",
            expires_at=due,
            occurred_at=made,
        ),
    ]
    kafka = FakeConsumer(tp)
    await runtime.consumer.handle([command_record(tp, i, b) for i, b in enumerate(bodies)], kafka)
    assert kafka.commits == [{tp: 2}]
    assert db.positions[PositionKey("SKU-1", "WH1")].reserved == 2
    assert (await runtime.expiry.sweep()).applied == 1
    assert db.positions[PositionKey("SKU-1", "WH1")].reserved == 0
    await runtime.close()
