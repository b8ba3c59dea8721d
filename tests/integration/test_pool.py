"""The worker's pool: no reset round trip after a finished transaction, and a connection
given back inside a transaction is still handed out clean."""

from __future__ import annotations

import pytest

from stockworker.adapters.postgres.pool import create_pool

pytestmark = pytest.mark.integration


async def test_a_connection_given_back_costs_no_statement_and_comes_back_clean(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, size=1)
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: statements.append(q.query))
            async with conn.transaction():
                await conn.execute("SELECT 1")
        # BEGIN, the statement, COMMIT: no reset query on release.
        assert len(statements) == 3, statements

        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE abandoned (x int)")
        await pool.release(conn)
        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT to_regclass('pg_temp.abandoned')") is None
    finally:
        await pool.close()
