"""Connection pool set-up."""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from stockworker.adapters.postgres.errors import (
    describe_failure,
    is_configuration_error,
    is_transient,
)
from stockworker.service.loops import Backoff, retry


def _worth_retrying(exc: BaseException) -> bool:
    return is_transient(exc) and not is_configuration_error(exc)


def connect_options(dsn: str) -> dict[str, Any]:
    """Options for asyncpg beside the DSN: no TLS to a loopback address unless asked for.

    asyncpg's default (`sslmode=prefer`) negotiates TLS even to 127.0.0.1, where it
    protects nothing and costs the worker about 5 % of its CPU. An `sslmode` or a
    `service` in the DSN, PGSSLMODE or PGSERVICE is obeyed as given (a tunnel to a
    server that requires TLS says so there).
    """
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    if "sslmode" in query or "service" in query:
        return {}
    if os.environ.get("PGSSLMODE") or os.environ.get("PGSERVICE"):
        return {}
    return {"ssl": False} if _is_loopback(parts.hostname) else {}


def _is_loopback(host: str | None) -> bool:
    if host is None:  # asyncpg's default: a Unix socket, where TLS does not apply
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a connection gets before it goes back to the pool: nothing more.

    asyncpg rolls back a transaction left open by itself; its default reset on top
    (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) is one more round trip
    per transaction, ~1 in 14 of the worker's statements. Pooled connections keep no
    session state here: locks are transaction-scoped, and the relay's session lock and
    LISTEN live on a connection of its own, outside the pool.
    """


async def create_pool(dsn: str, size: int, backoff: Backoff | None = None) -> asyncpg.Pool:
    """A pool, waiting with backoff while the database is not reachable yet (start-up order).

    A failure no retry can cure (a missing certificate file, an unknown role or
    database, a wrong password) is raised at once.
    """

    async def connect() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            server_settings={"application_name": "stockworker"},
            reset=_keep_session,
            **connect_options(dsn),
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
