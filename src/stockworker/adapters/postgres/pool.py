"""Connection pool set-up."""

from __future__ import annotations

import asyncio
import logging
import random

import asyncpg

from stockworker.adapters.postgres.errors import (
    describe_failure,
    is_configuration_error,
    is_transient,
)

log = logging.getLogger(__name__)


async def create_pool(
    dsn: str, size: int, retry_initial_seconds: float = 0.1, retry_max_seconds: float = 10.0
) -> asyncpg.Pool:
    """A pool, waiting with backoff while the database is not reachable yet (start-up order).

    A failure no retry can cure (a missing certificate file, an unknown role or
    database, a wrong password) is raised at once.
    """
    delay = retry_initial_seconds
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                server_settings={"application_name": "stockworker"},
            )
        except Exception as exc:
            if is_configuration_error(exc) or not is_transient(exc):
                raise
            pause = delay * random.uniform(0.5, 1.0)
            log.warning("database not reachable, retrying in %.1fs: %s",
                        pause, describe_failure(exc))  # fmt: skip
            await asyncio.sleep(pause)
            delay = min(delay * 2, retry_max_seconds)
            continue
        assert pool is not None
        return pool
