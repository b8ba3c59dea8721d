"""The relay's side of the outbox table: read unpublished rows, mark them published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.unit_of_work import message_from_row
from stockworker.service.ports import OutboxMessage

# Session advisory lock id held by the one active relay: per-SKU order needs one publisher.
RELAY_LEADER_LOCK = 7372020


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    message: OutboxMessage


class OutboxStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def try_lead(self) -> bool:
        """Become the only relay (until this connection closes)."""
        return bool(await self._conn.fetchval(queries.TRY_RELAY_LEADERSHIP, RELAY_LEADER_LOCK))

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        rows = await self._conn.fetch(queries.FETCH_UNPUBLISHED, limit)
        return [
            PendingMessage(r["id"], message_from_row(r, "event_id", "topic", "key", "value"))
            for r in rows
        ]

    async def mark_published(self, ids: Sequence[int]) -> None:
        await self._conn.execute(queries.MARK_PUBLISHED, list(ids))
