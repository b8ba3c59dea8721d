"""What the database does to a batch, on real PostgreSQL: a connection killed mid-batch,
more locks than its lock table holds, reused command ids, and expiry that never sticks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.errors import describe_failure, is_transient
from stockworker.adapters.postgres.unit_of_work import (
    PostgresUnitOfWork,
    PostgresUnitOfWorkFactory,
    all_positions,
)
from stockworker.domain.position import PositionKey
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.expiry import ReservationExpiry, expiry_command
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode

pytestmark = pytest.mark.integration
TOPICS = Topics("it.")


def records(bodies: list[dict[str, Any]]) -> list[InboundRecord]:
    return [InboundRecord(TOPICS.commands, 0, i, b"k", encode(b)) for i, b in enumerate(bodies)]


async def outbox_topics(pool: asyncpg.Pool) -> list[str]:
    return [r["topic"] for r in await pool.fetch("SELECT topic FROM outbox ORDER BY id")]


class Failover:
    """A unit of work whose connection is terminated after it took its locks, like a
    failover or a proxy restart in the middle of a batch, for the next `times` uses."""

    def __init__(self, pool: asyncpg.Pool, admin: asyncpg.Pool, times: int) -> None:
        self.pool, self.admin, self.times = pool, admin, times

    def __call__(self) -> PostgresUnitOfWork:
        failover = self

        class Terminated(PostgresUnitOfWork):
            async def lock(self, names: Any) -> None:
                await super().lock(names)
                if failover.times > 0:
                    failover.times -= 1
                    pid = self._connection.get_server_pid()
                    await failover.admin.execute("SELECT pg_terminate_backend($1)", pid)

        return Terminated(self.pool)


async def test_a_connection_terminated_mid_batch_is_retried_never_dead_lettered(
    pool: asyncpg.Pool, database_url: str
) -> None:
    admin = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert admin is not None
    failover = Failover(pool, admin, times=10)
    batch = records(
        [command("ReceivePOItem", sku=f"S-{i}", po_number=f"PO-{i}", quantity=3) for i in range(5)]
    )
    service = CommandBatchService(failover, TOPICS, is_transient, describe_failure=describe_failure)
    try:
        with pytest.raises(Exception) as lost:
            await service.process(batch)
        assert is_transient(lost.value), repr(lost.value)
        assert TOPICS.dead_letters not in await outbox_topics(pool)
        failover.times = 0  # the database is back
        report = await service.process(batch)
    finally:
        await admin.close()
    assert (report.applied, report.dead_lettered) == (5, 0), report
    assert TOPICS.dead_letters not in await outbox_topics(pool)
    assert sorted(p.on_hand for p in await all_positions(pool)) == [3] * 5


async def test_a_batch_of_ten_thousand_positions_fits_the_lock_table(pool: asyncpg.Pool) -> None:
    """PostgreSQL's lock table holds max_locks_per_transaction x max_connections locks
    (6,400 by default) for all sessions together: one advisory lock per position would
    exhaust it, and that error is transient, so the batch would be retried forever."""
    bodies = [
        command("ReceivePOItem", sku=f"S-{i}", po_number=f"PO-{i}", quantity=1)
        for i in range(10_000)
    ]
    service = CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)
    report = await service.process(records(bodies))
    assert report.applied == 10_000
    assert await pool.fetchval("SELECT count(*) FROM stock_position") == 10_000


async def test_a_reused_command_id_is_refused_across_transactions(pool: asyncpg.Pool) -> None:
    service = CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)
    first = command("ReceivePOItem", quantity=10)
    await service.process(records([first]))
    await service.process(records([{**first, "sku": "OTHER", "quantity": 99}]))
    await service.process(records([first]))
    results = [
        json.loads(r["value"])
        for r in await pool.fetch(
            "SELECT value FROM outbox WHERE topic = $1 ORDER BY id", TOPICS.results
        )
    ]
    assert [r["type"] for r in results] == ["CommandAccepted", "CommandRejected", "CommandAccepted"]
    assert results[1]["reason_code"] == "COMMAND_ID_REUSED"
    assert results[2] == results[0]
    assert [(p.sku, p.on_hand) for p in await all_positions(pool)] == [("SKU-1", 10)]


async def test_a_reservation_made_again_under_its_old_id_and_expiry_still_expires(
    pool: asyncpg.Pool,
) -> None:
    """Its expiry must not look like the first one's, already in the inbox."""
    now = datetime.now(UTC)
    service = CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)
    expiry = ReservationExpiry(
        PostgresUnitOfWorkFactory(pool), service, clock=lambda: now, is_transient=is_transient
    )
    expires = (now - timedelta(minutes=1)).isoformat()
    made_at = (now - timedelta(hours=1)).isoformat()

    def reserve() -> dict[str, Any]:
        return command("ReserveStock", reservation_id="R-AGAIN", quantity=2, order_ref="O-1",
                       expires_at=expires, occurred_at=made_at)  # fmt: skip

    await service.process(records([command("ReceivePOItem", quantity=10), reserve()]))
    assert (await expiry.sweep()).applied == 1
    await service.process(records([reserve()]))
    assert (await expiry.sweep()).applied == 1
    [position] = await all_positions(pool)
    assert (position.reserved, dict(position.reservations)) == (0, {})


async def test_an_expiry_sweep_reaches_every_due_reservation(pool: asyncpg.Pool) -> None:
    """More due reservations than one page: the sweep goes on to the next pages."""
    now = datetime.now(UTC)
    service = CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)
    expiry = ReservationExpiry(
        PostgresUnitOfWorkFactory(pool), service, clock=lambda: now,
        is_transient=is_transient, batch_size=7,
    )  # fmt: skip
    due = (now - timedelta(minutes=1)).isoformat()
    made = (now - timedelta(hours=1)).isoformat()
    bodies: list[dict[str, Any]] = [command("ReceivePOItem", quantity=100)]
    bodies += [
        command(
            "ReserveStock",
            reservation_id=f"R-{i}",
            quantity=1,
            order_ref=f"O-{i}",
            expires_at=due,
            occurred_at=made,
        )
        for i in range(30)
    ]
    await service.process(records(bodies))
    assert (await expiry.sweep()).applied == 30
    [position] = await all_positions(pool)
    assert (position.key, position.reserved) == (PositionKey("SKU-1", "WH1"), 0)


async def test_a_dead_letter_whose_header_key_holds_nul_is_stored(pool: asyncpg.Pool) -> None:
    """PostgreSQL's text refuses NUL (SQLSTATE 22021): stored as it came, the key would
    fail every attempt to dead-letter its record and stop the partition."""
    service = CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)
    record = InboundRecord(TOPICS.commands, 0, 3, b"k", b"not json", (("a\x00b", b"v"),))
    good = InboundRecord(TOPICS.commands, 0, 4, b"k", encode(command("ReceivePOItem")))
    report = await service.process([record, good])
    assert (report.dead_lettered, report.applied) == (1, 1)
    [keys] = [
        r["header_keys"]
        for r in await pool.fetch(
            "SELECT header_keys FROM outbox WHERE topic = $1", TOPICS.dead_letters
        )
    ]
    assert keys[:2] == ["dlq.invalid_header.key_b64", "dlq.invalid_header.value"]


async def test_due_reservations_that_stay_do_not_starve_the_one_behind_them(
    pool: asyncpg.Pool,
) -> None:
    """More than a page of due reservations that a sweep cannot release (their expiry is
    already in the inbox, as the old colliding ids left them) ahead of one it can."""
    now = datetime.now(UTC)
    factory = PostgresUnitOfWorkFactory(pool)
    service = CommandBatchService(factory, TOPICS, is_transient)
    expiry = ReservationExpiry(
        factory, service, clock=lambda: now, is_transient=is_transient, batch_size=3
    )
    made = (now - timedelta(hours=3)).isoformat()

    def reserve(rid: str, expires: datetime) -> dict[str, Any]:
        return command(
            "ReserveStock",
            reservation_id=rid,
            quantity=1,
            order_ref="O",
            expires_at=expires.isoformat(),
            occurred_at=made,
        )

    stuck = [reserve(f"R-{i:02d}", now - timedelta(hours=2)) for i in range(8)]
    last = reserve("R-99", now - timedelta(hours=1))
    await service.process(records([command("ReceivePOItem", quantity=100), *stuck, last]))
    async with factory() as uow:
        due = await uow.due_reservations(now, 100)
    assert [d.reservation_id for d in due][-1] == "R-99"
    # Their expiries look processed already: each sweep finds them due again.
    await pool.executemany(
        "INSERT INTO processed_command (command_id, result_event_id, result_topic, "
        "result_value) VALUES ($1, $1, 't', '{}')",
        [(expiry_command(d, now).command_id,) for d in due[:-1]],
    )
    report = await expiry.sweep()
    assert (report.applied, report.duplicates) == (1, 8)
    [position] = await all_positions(pool)
    assert sorted(position.reservations) == [f"R-{i:02d}" for i in range(8)]
