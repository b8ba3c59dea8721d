"""Retention: inbox rows are kept for a while, then deleted.

The inbox must outlive any redelivery of a command (Kafka retention of
`stock.commands.v1`, replays by operators): a command older than the inbox retention
that arrives again is applied again. The relay deletes outbox rows as it publishes
them; the sweep only removes rows that versions before migration 0006 marked
published. Unpublished rows are never deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import describe_failure, is_transient
from stockworker.service.loops import Stop, log_failure, repeat
from stockworker.service.observation import (
    INBOX_RETENTION,
    NO_OBSERVER,
    OUTBOX_RETENTION,
    Observer,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Swept:
    inbox: int = 0
    outbox: int = 0


class RetentionSweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        inbox_seconds: float,
        outbox_seconds: float,
        interval_seconds: float = 60.0,
        chunk: int = 5000,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._pool = pool
        self._observer = observer
        self._inbox_seconds = inbox_seconds
        self._outbox_seconds = outbox_seconds
        self._interval = interval_seconds
        self._chunk = chunk
        self._stop = Stop()

    async def _delete_chunk(self) -> Swept:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(queries.TRY_RETENTION_LEADERSHIP):
                return Swept()
            inbox = await conn.execute(queries.DELETE_OLD_INBOX, self._inbox_seconds, self._chunk)
            outbox = await conn.execute(
                queries.DELETE_OLD_OUTBOX, self._outbox_seconds, self._chunk
            )
        # asyncpg returns the command tag, e.g. "DELETE 42".
        return Swept(int(inbox.split()[-1]), int(outbox.split()[-1]))

    async def sweep(self) -> Swept:
        """Delete everything past its retention, a chunk per transaction."""
        total = Swept()
        while not self._stop.is_set():
            swept = await self._delete_chunk()
            total = Swept(total.inbox + swept.inbox, total.outbox + swept.outbox)
            if max(swept.inbox, swept.outbox) < self._chunk:
                break
        return total

    async def _sweep_and_say(self) -> None:
        swept = await self.sweep()
        self._observer.swept(INBOX_RETENTION, swept.inbox)
        self._observer.swept(OUTBOX_RETENTION, swept.outbox)
        if swept.inbox or swept.outbox:
            log.info("retention: deleted %d inbox and %d outbox rows", swept.inbox, swept.outbox)

    async def run(self) -> None:
        await repeat(
            self._sweep_and_say,
            interval_seconds=self._interval,
            stop=self._stop,
            on_error=log_failure(
                "retention sweep", is_transient, describe_failure, self._observer.retried
            ),
        )

    def stop(self) -> None:
        self._stop.set()
