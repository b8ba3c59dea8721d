"""The batch service on the real PostgreSQL unit of work."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from stockworker.adapters.postgres.errors import is_transient
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory, all_positions
from stockworker.domain.catalog import Item, Location
from stockworker.domain.footprint import Footprint
from stockworker.domain.position import Position, PositionKey, Reservation
from stockworker.domain.purchasing import PoLine
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord, OutboxMessage, StateChanges, StoredResult
from stockworker.service.topics import Topics
from tests.support.builders import command, encode

pytestmark = pytest.mark.integration
TOPICS = Topics("it.")


def service(pool: asyncpg.Pool) -> CommandBatchService:
    return CommandBatchService(PostgresUnitOfWorkFactory(pool), TOPICS, is_transient)


def records(*bodies: dict[str, object] | bytes, partition: int = 0) -> list[InboundRecord]:
    return [
        InboundRecord(TOPICS.commands, partition, i, b"k", b if isinstance(b, bytes) else encode(b))
        for i, b in enumerate(bodies)
    ]


async def test_state_results_and_outbox_round_trip(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    key = PositionKey("S-1", "W-1")
    expires = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    position = Position(
        "S-1",
        "W-1",
        on_hand=9,
        reserved=2,
        picked=4,
        back_ordered=0,
        stock_value=Decimal("12.345678"),
        picks={"a": 3, "b": 1},
        reservations={"R": Reservation("R", "o", 2, 0, expires, sequence=2)},
        bin="X",
        preferred_supplier="ACME",
        max_quantity=5,
        version=3,
    )
    line = PoLine("PO", 1, "S-1", "W-1", 10, Decimal("1.5"), 4, Decimal("6"), supplier="ACME",
                  expected_date=date(2026, 12, 1))  # fmt: skip
    location, item = Location("W-1", "Main", active=False), Item("S-1", "Widget", "BOX")
    message = OutboxMessage(uuid.uuid4(), "t", None, b"\x00bytes", (("h", b"\xff"),))
    footprint = Footprint((key, PositionKey("S-1", "other")), (line.key,), ("R", "X"),
                          ("W-1",), ("S-1",))  # fmt: skip
    async with factory() as uow:
        await uow.lock(["position\x00S-1\x00W-1"])
        await uow.save(
            StateChanges(
                positions=[(None, position)], po_lines=[line], locations=[location], items=[item]
            )
        )
        await uow.save_results([StoredResult(uuid.UUID(int=1), message)])
        await uow.append_outbox([message])
    async with factory() as uow:
        state = await uow.load_state(footprint)
        assert state.positions == {key: position}
        assert state.po_lines == {line.key: line}
        assert (state.locations, state.items) == ({"W-1": location}, {"S-1": item})
        assert state.reservation_owners == {"R": key}
        assert [d.reservation_id for d in await uow.due_reservations(expires, 10)] == ["R"]
        assert await uow.due_reservations(expires - timedelta(seconds=1), 10) == []
        stored = await uow.load_results([uuid.UUID(int=1), uuid.UUID(int=2)])
        assert stored[uuid.UUID(int=1)].result == message
    row = await pool.fetchrow("SELECT key, value, header_keys, header_values FROM outbox")
    assert row is not None
    assert (row["key"], row["value"], row["header_values"]) == (None, b"\x00bytes", [b"\xff"])
    # A closed reservation is deleted; a changed one rewritten.
    released = replace(position, reserved=0, reservations={}, version=4)
    async with factory() as uow:
        await uow.save(StateChanges(positions=[(position, released)]))
    assert await pool.fetchval("SELECT count(*) FROM stock_reservation") == 0


async def test_an_exception_rolls_everything_back(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    with pytest.raises(RuntimeError):
        async with factory() as uow:
            await uow.save(
                StateChanges(positions=[(None, Position("S", "W", on_hand=1, version=1))])
            )
            raise RuntimeError("boom")
    assert await all_positions(pool) == []


async def test_a_batch_is_applied_with_inbox_and_outbox_in_one_transaction(
    pool: asyncpg.Pool,
) -> None:
    receive = command("ReceivePOItem", quantity=6)
    report = await service(pool).process(
        records(receive, command("PickStock", quantity=2), b"junk", receive)
    )
    assert (report.applied, report.duplicates, report.dead_lettered) == (2, 1, 1)
    [p] = await all_positions(pool)
    assert (p.on_hand, p.picked, p.version) == (6, 2, 2)
    assert await pool.fetchval("SELECT count(*) FROM processed_command") == 2
    topics = [r["topic"] for r in await pool.fetch("SELECT topic FROM outbox ORDER BY id")]
    assert topics.count(TOPICS.changed) == 2
    assert topics.count(TOPICS.results) == 3  # two results and the duplicate's repeat
    assert topics.count(TOPICS.dead_letters) == 1


async def test_concurrent_batches_on_one_position_never_over_pick(pool: asyncpg.Pool) -> None:
    """Several workers' batches race for one position; the locks serialise them."""
    await service(pool).process(records(command("ReceivePOItem", quantity=100)))
    picks = [command("PickStock", quantity=3, order_ref=f"O{i}") for i in range(60)]
    batches = [picks[i : i + 6] for i in range(0, len(picks), 6)]
    reports = await asyncio.gather(
        *(service(pool).process(records(*b, partition=n)) for n, b in enumerate(batches))
    )
    applied = sum(r.applied for r in reports)
    assert applied == 33  # 100 // 3
    [p] = await all_positions(pool)
    assert (p.picked, p.available, p.version) == (99, 1, 1 + 33)
    changed = [
        json.loads(r["value"])["version"]
        for r in await pool.fetch(
            "SELECT value FROM outbox WHERE topic = $1 ORDER BY id", TOPICS.changed
        )
    ]
    assert changed == list(range(1, 35))  # outbox order is version order for one position


async def test_the_same_command_in_two_concurrent_batches_is_applied_once(
    pool: asyncpg.Pool,
) -> None:
    receive = command("ReceivePOItem", quantity=5)
    await asyncio.gather(*(service(pool).process(records(receive)) for _ in range(5)))
    [p] = await all_positions(pool)
    assert (p.on_hand, p.version) == (5, 1)


async def test_connection_errors_are_transient_and_rule_violations_are_not(
    pool: asyncpg.Pool, database_url: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as check:
        await pool.execute(
            "INSERT INTO stock_position (sku, location, version, on_hand) VALUES ('a', 'b', 1, -1)"
        )
    assert not is_transient(check.value)
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(database_url.replace(":5432", ":1"), timeout=2)
    assert is_transient(refused.value)


async def test_only_the_inbox_race_makes_a_unique_violation_transient(pool: asyncpg.Pool) -> None:
    insert_inbox = (
        "INSERT INTO processed_command (command_id, result_event_id, result_topic, result_value)"
        " VALUES ($1, $1, 't', '')"
    )
    await pool.execute(insert_inbox, uuid.UUID(int=7))
    with pytest.raises(asyncpg.UniqueViolationError) as inbox_race:
        await pool.execute(insert_inbox, uuid.UUID(int=7))
    assert is_transient(inbox_race.value)
    insert_position = "INSERT INTO stock_position (sku, location, version) VALUES ('s', 'l', 1)"
    await pool.execute(insert_position)
    with pytest.raises(asyncpg.UniqueViolationError) as other:
        await pool.execute(insert_position)
    assert not is_transient(other.value)
