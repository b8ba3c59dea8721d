"""The outbox table on PostgreSQL: the relay's session (lead, read unpublished rows,
mark them published or park them) and the operator's side (list parked rows, re-queue)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import describe_failure, is_configuration_error
from stockworker.adapters.postgres.outbox_rows import OUTBOX_CHANNEL, message_from_row
from stockworker.adapters.postgres.pool import connect_options
from stockworker.config import ConfigurationError
from stockworker.service.limits import published_size
from stockworker.service.ports import PendingMessage

# Session advisory lock id held by the one active relay: per-SKU order needs one publisher.
RELAY_LEADER_LOCK = 7372020

# parked_reason is cut to this many characters.
PARKED_REASON_KEPT = 1000


def _pending(row: asyncpg.Record) -> PendingMessage:
    return PendingMessage(row["id"], message_from_row(row, "event_id", "topic", "key", "value"))


class PostgresOutboxSession:
    """A relay's session: one connection, leadership by a session advisory lock, and a
    LISTEN on the channel every committed outbox write notifies, so it wakes at once."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._wake = asyncio.Event()

    @classmethod
    async def open(cls, database_url: str) -> PostgresOutboxSession:
        try:
            conn = await asyncpg.connect(database_url, **connect_options(database_url))
        except Exception as exc:
            if is_configuration_error(exc):
                raise ConfigurationError("DATABASE_URL", describe_failure(exc)) from None
            raise
        session = cls(conn)
        await conn.add_listener(OUTBOX_CHANNEL, session._on_notify)
        return session

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def try_lead(self) -> bool:
        """Become the only relay (until this connection closes)."""
        return bool(await self._conn.fetchval(queries.TRY_RELAY_LEADERSHIP, RELAY_LEADER_LOCK))

    async def wait_for_rows(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        return [_pending(r) for r in await self._conn.fetch(queries.FETCH_UNPUBLISHED, limit)]

    async def delete_published(self, ids: Sequence[int]) -> None:
        if ids:
            await self._conn.execute(queries.DELETE_PUBLISHED, list(ids))

    async def park(self, id: int, reason: str) -> None:
        """Set a row aside: the relay skips it and retention keeps it."""
        await self._conn.execute(queries.PARK, id, reason[:PARKED_REASON_KEPT])

    async def close(self) -> None:
        await self._conn.close()


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    id: int
    event_id: UUID
    topic: str
    key: bytes | None
    size: int  # the whole record as the relay publishes it (see service/limits.py)
    reason: str
    parked_at: datetime


class OutboxStore:
    """The operator's side of the outbox: parked rows."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def parked(self) -> list[ParkedMessage]:
        return [
            ParkedMessage(
                id=r["id"],
                event_id=r["event_id"],
                topic=r["topic"],
                key=r["key"],
                size=published_size(_pending(r).message),
                reason=r["parked_reason"],
                parked_at=r["parked_at"],
            )
            for r in await self._conn.fetch(queries.PARKED)
        ]

    async def requeue(self, id: int) -> bool:
        """Give a parked row back to the relay (after its cause was fixed); False if `id`
        is not parked. It is published next, ahead of younger rows."""
        async with self._conn.transaction():
            found = await self._conn.fetchval(queries.REQUEUE_PARKED, id)
            if found is not None:
                await self._conn.execute(queries.NOTIFY_OUTBOX, OUTBOX_CHANNEL)
        return found is not None
