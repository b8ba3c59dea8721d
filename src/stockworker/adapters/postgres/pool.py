"""Connection pool set-up."""

from __future__ import annotations

import asyncpg


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        server_settings={"application_name": "stockworker"},
    )
    assert pool is not None
    return pool
