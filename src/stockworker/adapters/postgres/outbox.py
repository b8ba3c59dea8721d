"""The relay's side of the outbox table: read unpublished rows, mark them published or
park them; and the operator's: list parked rows, re-queue one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.unit_of_work import OUTBOX_CHANNEL, message_from_row
from stockworker.service.limits import published_size
from stockworker.service.ports import OutboxMessage

# Session advisory lock id held by the one active relay: per-SKU order needs one publisher.
RELAY_LEADER_LOCK = 7372020

# parked_reason is cut to this many characters.
PARKED_REASON_KEPT = 1000


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    message: OutboxMessage


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
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def try_lead(self) -> bool:
        """Become the only relay (until this connection closes)."""
        return bool(await self._conn.fetchval(queries.TRY_RELAY_LEADERSHIP, RELAY_LEADER_LOCK))

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        """The oldest rows neither published nor parked, in id order."""
        rows = await self._conn.fetch(queries.FETCH_UNPUBLISHED, limit)
        return [
            PendingMessage(r["id"], message_from_row(r, "event_id", "topic", "key", "value"))
            for r in rows
        ]

    async def mark_published(self, ids: Sequence[int]) -> None:
        if ids:
            await self._conn.execute(queries.MARK_PUBLISHED, list(ids))

    async def park(self, id: int, reason: str) -> None:
        """Set a row aside: the relay skips it and retention keeps it."""
        await self._conn.execute(queries.PARK, id, reason[:PARKED_REASON_KEPT])

    async def parked(self) -> list[ParkedMessage]:
        rows = await self._conn.fetch(queries.PARKED)
        return [
            ParkedMessage(
                id=r["id"],
                event_id=r["event_id"],
                topic=r["topic"],
                key=r["key"],
                size=published_size(message_from_row(r, "event_id", "topic", "key", "value")),
                reason=r["parked_reason"],
                parked_at=r["parked_at"],
            )
            for r in rows
        ]

    async def requeue(self, id: int) -> bool:
        """Give a parked row back to the relay (after its cause was fixed); False if `id`
        is not parked. It is published next, ahead of younger rows."""
        async with self._conn.transaction():
            found = await self._conn.fetchval(queries.REQUEUE_PARKED, id)
            if found is not None:
                await self._conn.execute(queries.NOTIFY_OUTBOX, OUTBOX_CHANNEL)
        return found is not None
