"""Retention deletes old inbox rows and old *published* outbox rows, nothing else."""

from __future__ import annotations

import asyncpg
import pytest

from stockworker.adapters.postgres.retention import RetentionSweeper
from stockworker.service.command_batch import CommandBatchService
from tests.integration.test_postgres_service import records, service
from tests.support.builders import command

pytestmark = pytest.mark.integration


async def test_old_inbox_and_published_outbox_rows_are_deleted_in_chunks(
    pool: asyncpg.Pool,
) -> None:
    batch_service: CommandBatchService = service(pool)
    await batch_service.process(
        records(*(command("ReceivePOItem", po_number=f"P{i}") for i in range(7)))
    )
    assert await pool.fetchval("SELECT count(*) FROM processed_command") == 7
    # Age four inbox rows, and the outbox rows: half published long ago, half never.
    await pool.execute(
        "UPDATE processed_command SET processed_at = now() - interval '2 hours' "
        "WHERE command_id IN (SELECT command_id FROM processed_command LIMIT 4)"
    )
    outbox_ids = [r["id"] for r in await pool.fetch("SELECT id FROM outbox ORDER BY id")]
    old_published = outbox_ids[::2]
    await pool.execute(
        "UPDATE outbox SET created_at = now() - interval '2 hours', "
        "published_at = CASE WHEN id = ANY($1::bigint[]) THEN now() - interval '2 hours' END",
        old_published,
    )
    sweeper = RetentionSweeper(pool, inbox_seconds=3600, outbox_seconds=3600, chunk=2)
    swept = await sweeper.sweep()
    assert (swept.inbox, swept.outbox) == (4, len(old_published))
    assert await pool.fetchval("SELECT count(*) FROM processed_command") == 3
    left = {r["id"] for r in await pool.fetch("SELECT id FROM outbox")}
    assert left == set(outbox_ids) - set(old_published)
    # Unpublished rows are never deleted, however old.
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == len(
        left
    )
    assert (await sweeper.sweep()) == type(swept)()
