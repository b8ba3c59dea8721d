"""Connection pool set-up."""

from __future__ import annotations

import asyncpg

from stockworker.adapters.postgres.errors import (
    describe_failure,
    is_configuration_error,
    is_transient,
)
from stockworker.service.loops import Backoff, retry


def _worth_retrying(exc: BaseException) -> bool:
    return is_transient(exc) and not is_configuration_error(exc)


async def create_pool(dsn: str, size: int, backoff: Backoff | None = None) -> asyncpg.Pool:
    """A pool, waiting with backoff while the database is not reachable yet (start-up order).

    A failure no retry can cure (a missing certificate file, an unknown role or
    database, a wrong password) is raised at once.
    """

    async def connect() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=size, server_settings={"application_name": "stockworker"}
        )
        assert pool is not None
        return pool

    pool = await retry(
        connect,
        retry_on=_worth_retrying,
        backoff=backoff or Backoff(),
        what="connecting to the database",
        describe=describe_failure,
    )
    assert pool is not None  # retried until it succeeds: there is no stop
    return pool
