"""Retention: the inbox and the published outbox are kept for a while, then deleted.

The inbox must outlive any redelivery of a command (Kafka retention of
`stock.commands.v1`, replays by operators): a command older than the inbox retention
that arrives again is applied again. Published outbox rows are only kept for
operators to look at. Unpublished rows are never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import describe_failure, is_transient

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
    ) -> None:
        self._pool = pool
        self._inbox_seconds = inbox_seconds
        self._outbox_seconds = outbox_seconds
        self._interval = interval_seconds
        self._chunk = chunk
        self._stopping = asyncio.Event()

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
        while not self._stopping.is_set():
            swept = await self._delete_chunk()
            total = Swept(total.inbox + swept.inbox, total.outbox + swept.outbox)
            if max(swept.inbox, swept.outbox) < self._chunk:
                break
        return total

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                swept = await self.sweep()
                if swept.inbox or swept.outbox:
                    log.info("retention: deleted %d inbox and %d outbox rows", *(
                        swept.inbox, swept.outbox))  # fmt: skip
            except Exception as exc:
                if is_transient(exc):
                    log.warning("retention sweep: transient failure %s", describe_failure(exc))
                else:
                    log.error("retention sweep failed (%s); retrying after the interval",
                              describe_failure(exc))  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    def stop(self) -> None:
        self._stopping.set()
