"""The outbox relay: publishes committed outbox rows in id order, then marks them published.

One relay leads at a time (a PostgreSQL session advisory lock), so events of one SKU
leave in the order their transactions committed. A crash between publish and mark
re-publishes the same rows with the same event ids: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import asyncpg

from stockworker.adapters.kafka.connection import KafkaConnection
from stockworker.adapters.kafka.publisher import KafkaPublisher
from stockworker.adapters.postgres.outbox import OutboxStore
from stockworker.adapters.postgres.unit_of_work import OUTBOX_CHANNEL
from stockworker.faults import crash_point

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        database_url: str,
        kafka: KafkaConnection | str,
        batch_size: int = 2000,
        idle_poll_seconds: float = 1.0,
        retry_max_seconds: float = 10.0,
    ) -> None:
        self._database_url = database_url
        self._kafka = kafka
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._retry_max_seconds = retry_max_seconds
        self._stop = asyncio.Event()
        self.published = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Lead, publish, and on any failure back off and start again, until stopped."""
        delay = 0.1
        while not self._stop.is_set():
            try:
                await self._run_once()
                delay = 0.1
            except Exception as exc:
                log.warning("outbox relay failed, retrying in %.1fs: %r", delay, exc)
                await self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _run_once(self) -> None:
        conn = await asyncpg.connect(self._database_url)
        publisher = KafkaPublisher(self._kafka)
        try:
            store = OutboxStore(conn)
            while not await store.try_lead():
                if self._stop.is_set():
                    return
                await self._sleep(1.0)
            wake = asyncio.Event()

            def on_notify(*_: Any) -> None:
                wake.set()

            await conn.add_listener(OUTBOX_CHANNEL, on_notify)
            await publisher.start()
            log.info("outbox relay leading")
            while not self._stop.is_set():
                wake.clear()
                if await self._publish_batch(store, publisher) == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self._idle_poll_seconds)
            # Stopping: flush what is committed already, so nothing waits for the next start.
            while await self._publish_batch(store, publisher):
                pass
        finally:
            with contextlib.suppress(Exception):
                await publisher.stop()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _publish_batch(self, store: OutboxStore, publisher: KafkaPublisher) -> int:
        pending = await store.fetch_unpublished(self._batch_size)
        if not pending:
            return 0
        await publisher.publish([p.message for p in pending])
        crash_point("relay-after-publish")
        await store.mark_published([p.id for p in pending])
        self.published += len(pending)
        return len(pending)
