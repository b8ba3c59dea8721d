"""The database holds a tracked position's quantities to the sums of its serials or lots,
whatever writes them (checked at commit, for positions whose holdings changed)."""

from __future__ import annotations

import asyncpg
import pytest


async def _tracked_position(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO stock_position (sku, location, on_hand, picked, version, picks)"
            " VALUES ('S', 'L', 3, 1, 1, '{\"O\": 1}')"
        )
        await conn.execute(
            "INSERT INTO stock_holding (sku, location, kind, id, on_hand, picks, sequence) VALUES"
            " ('S', 'L', 'lot', 'A', 2, '{\"O\": 1}', 1), ('S', 'L', 'lot', 'B', 1, '{}', 1)"
        )


async def test_holdings_that_add_up_commit(pool: asyncpg.Pool) -> None:
    await _tracked_position(pool)
    async with pool.acquire() as conn, conn.transaction():
        # Rows rewritten in several statements may disagree until the commit.
        await conn.execute("DELETE FROM stock_holding WHERE id = 'B'")
        await conn.execute("UPDATE stock_holding SET on_hand = 3 WHERE id = 'A'")
    assert await pool.fetchval("SELECT sum(on_hand) FROM stock_holding") == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE stock_holding SET on_hand = on_hand + 1 WHERE id = 'B'",
        "UPDATE stock_holding SET picks = '{}' WHERE id = 'A'",
        "DELETE FROM stock_holding WHERE id = 'B'",
    ],
)
async def test_holdings_that_do_not_add_up_are_refused_at_commit(
    pool: asyncpg.Pool, statement: str
) -> None:
    await _tracked_position(pool)
    with pytest.raises(asyncpg.CheckViolationError, match="do not add up"):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(statement)
    assert await pool.fetchval("SELECT sum(on_hand) FROM stock_holding") == 3
