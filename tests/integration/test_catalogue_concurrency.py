"""Catalogue commands for one code, applied by concurrent batches (as workers on different
partitions would), each in its own transaction on its own connection: every one of them
is applied and the entry's version counts them all (none reads a version another has
already replaced and writes the same next one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.errors import is_transient
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.domain.decoding import decode_command
from stockworker.domain.footprint import footprint
from stockworker.service.batch_state import lock_names
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import SHARED_LOCK, InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode

pytestmark = pytest.mark.integration
TOPICS = Topics("it.")
# Batches racing for one entry; each holds a connection of its own for its transaction.
RACERS = 16


@pytest.fixture
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool with a connection open for every racer, so their transactions overlap."""
    pool = await asyncpg.create_pool(database_url, min_size=RACERS, max_size=RACERS)
    assert pool is not None
    yield pool
    await pool.close()


async def race(pool: asyncpg.Pool, bodies: list[dict[str, Any]]) -> None:
    """Apply each command in a batch of its own, all at once, on partitions of their own;
    every one must be applied."""
    factory = PostgresUnitOfWorkFactory(pool)
    reports = await asyncio.gather(
        *(
            CommandBatchService(factory, TOPICS, is_transient).process(
                [InboundRecord(TOPICS.commands, partition, 0, b"k", encode(body))]
            )
            for partition, body in enumerate(bodies)
        )
    )
    assert [(r.applied, r.rejected, r.dead_lettered) for r in reports] == [(1, 0, 0)] * len(bodies)


async def results_of(pool: asyncpg.Pool, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results the batches put in the outbox, in the commands' order."""
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1", TOPICS.results)
    by_id = {r["command_id"]: r for r in (json.loads(row["value"]) for row in rows)}
    return [by_id[b["command_id"]] for b in bodies]


async def race_twice(
    pool: asyncpg.Pool, new_command: Callable[[int], dict[str, Any]], stored: str
) -> None:
    """Race RACERS commands for an entry that does not exist yet, then RACERS more for
    the entry they made; after each round, the stored entry (`stored`: a query of its
    version and fields) has counted every command and holds the last one's fields."""
    for round_ in range(2):
        bodies = [new_command(round_ * RACERS + i) for i in range(RACERS)]
        await race(pool, bodies)
        row = await pool.fetchrow(stored)
        assert row is not None
        fields = dict(row.items())
        assert fields.pop("version") == (round_ + 1) * RACERS
        results = await results_of(pool, bodies)
        assert [r["type"] for r in results] == ["CommandAccepted"] * RACERS
        # Each was told a version of its own; the one told the last wrote the entry.
        versions = range(round_ * RACERS + 1, (round_ + 1) * RACERS + 1)
        assert sorted(r["version"] for r in results) == list(versions)
        [last] = [b for b, r in zip(bodies, results, strict=True) if r["version"] == versions[-1]]
        assert fields == {name: last[name] for name in fields}


async def test_concurrent_configure_items_for_one_sku_each_add_a_version(
    wide_pool: asyncpg.Pool,
) -> None:
    await race_twice(
        wide_pool,
        lambda i: command("ConfigureItem", sku="RACE-1", name=f"Name {i}"),
        "SELECT name, version FROM stock_item WHERE sku = 'RACE-1'",
    )


async def test_concurrent_configure_locations_for_one_code_each_add_a_version(
    wide_pool: asyncpg.Pool,
) -> None:
    await race_twice(
        wide_pool,
        lambda i: command("ConfigureLocation", code="RACE-WH", name=f"Hall {i}", active=i % 2 == 0),
        "SELECT name, active, version FROM stock_location WHERE code = 'RACE-WH'",
    )


async def test_stock_batches_share_their_item_and_a_catalogue_change_waits_for_them(
    wide_pool: asyncpg.Pool,
) -> None:
    """Two stock batches hold an item in shared mode at once; a ConfigureItem of it (which
    may change its tracking) waits until both have committed, so it sees their stock."""
    factory = PostgresUnitOfWorkFactory(wide_pool)
    reading = [
        lock_names(footprint(decode(command("ReceivePOItem", sku="X", location=at, po_number=p))))
        for at, p in (("WH1", "P1"), ("WH2", "P2"))
    ]
    writing = lock_names(footprint(decode(command("ConfigureItem", sku="X"))))
    assert "item\x00X" in writing and f"{SHARED_LOCK}item\x00X" in reading[0]
    async with factory() as first, factory() as second:
        await first.lock(reading[0])
        await asyncio.wait_for(second.lock(reading[1]), timeout=30)  # no wait on a share
        configure = asyncio.create_task(_lock_in_own_transaction(factory, writing))
        await asyncio.sleep(0.5)
        assert not configure.done()  # held back by the two readers
    await asyncio.wait_for(configure, timeout=30)


def decode(body: dict[str, Any]) -> Any:
    return decode_command(encode(body))


async def _lock_in_own_transaction(factory: PostgresUnitOfWorkFactory, names: list[str]) -> None:
    async with factory() as uow:
        await uow.lock(names)
