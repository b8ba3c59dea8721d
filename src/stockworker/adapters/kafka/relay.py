"""The outbox relay: publishes committed outbox rows in id order, then marks them published.

One relay leads at a time (a PostgreSQL session advisory lock), so events of one SKU
leave in the order their transactions committed. A crash between publish and mark
re-publishes the same rows with the same event ids: at least once, never lost.

One row the broker will never take (too large, an invalid topic) must not hold back
the rows behind it. When a batch fails, the rows the broker acknowledged are marked
published, the producer is replaced (a refused batch leaves a gap in its partition's
sequence numbers) and the failed rows are sent again one at a time, in id order: one
that fails alone with such an error is *parked* (set aside with the reason, logged,
listed by `stockworker outbox parked`); any other error stops the round and the relay
retries from the oldest unpublished row, as before. Rows the producer was never given
(it refused an earlier one) go out in the next round.

Per-SKU order: a row acknowledged in a batch never overtakes an older row of its
partition that failed. The producer refuses a row before any later one is handed to
it, and when the broker refuses a batch, every later batch of that partition from the
same idempotent producer fails on the sequence gap. Failed rows are then sent in id
order, each awaited before the next. Only a parked row is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from typing import Any

import asyncpg

from stockworker.adapters.kafka.connection import KafkaConnection
from stockworker.adapters.kafka.publisher import KafkaPublisher, NotSent, is_unpublishable
from stockworker.adapters.postgres.errors import describe_failure, is_configuration_error
from stockworker.adapters.postgres.outbox import OutboxStore, PendingMessage
from stockworker.adapters.postgres.unit_of_work import OUTBOX_CHANNEL
from stockworker.config import ConfigurationError
from stockworker.domain.decoding import DEFAULT_MAX_MESSAGE_BYTES
from stockworker.faults import crash_point
from stockworker.service.limits import published_size, record_limit

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        database_url: str,
        kafka: KafkaConnection | str,
        batch_size: int = 2000,
        idle_poll_seconds: float = 1.0,
        retry_max_seconds: float = 10.0,
        max_record_bytes: int = record_limit(DEFAULT_MAX_MESSAGE_BYTES),
    ) -> None:
        self._database_url = database_url
        self._kafka = kafka
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._retry_max_seconds = retry_max_seconds
        self._max_record_bytes = max_record_bytes
        self._stop = asyncio.Event()
        self._publisher: KafkaPublisher | None = None
        self._connected = False
        self.published = 0
        self.parked = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Lead, publish, and on any failure back off and start again, until stopped.

        A database it could never connect to for a reason no retry cures (a wrong
        password, no such database) ends it with a ConfigurationError instead.
        """
        delay = 0.1
        while not self._stop.is_set():
            try:
                await self._run_once()
                delay = 0.1
            except Exception as exc:
                if not self._connected and is_configuration_error(exc):
                    raise ConfigurationError("DATABASE_URL", describe_failure(exc)) from None
                log.warning("outbox relay failed, retrying in %.1fs: %s",
                            delay, describe_failure(exc))  # fmt: skip
                await self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _run_once(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            # Built first: a producer that cannot be built (a missing CA file) then
            # leaves no database session behind.
            self._publisher = KafkaPublisher(self._kafka, self._max_record_bytes)
            conn = await asyncpg.connect(self._database_url)
            self._connected = True
            store = OutboxStore(conn)
            while not await store.try_lead():
                if self._stop.is_set():
                    return
                await self._sleep(1.0)
            wake = asyncio.Event()

            def on_notify(*_: Any) -> None:
                wake.set()

            await conn.add_listener(OUTBOX_CHANNEL, on_notify)
            await self._publisher.start()
            log.info("outbox relay leading")
            while not self._stop.is_set():
                wake.clear()
                if await self._publish_batch(store) == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self._idle_poll_seconds)
            # Stopping: flush what is committed already, so nothing waits for the next start.
            while await self._publish_batch(store):
                pass
        finally:
            await self._stop_publisher()
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _stop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.stop()

    async def _fresh_publisher(self) -> KafkaPublisher:
        """A new producer (new producer id, sequence numbers from zero)."""
        await self._stop_publisher()
        self._publisher = KafkaPublisher(self._kafka, self._max_record_bytes)
        await self._publisher.start()
        return self._publisher

    async def _publish_batch(self, store: OutboxStore) -> int:
        """Publish the oldest unpublished rows; returns how many were dealt with."""
        assert self._publisher is not None
        pending = await store.fetch_unpublished(self._batch_size)
        if not pending:
            return 0
        errors = await self._publisher.publish([p.message for p in pending])
        crash_point("relay-after-publish")
        acknowledged = [p.id for p, error in zip(pending, errors, strict=True) if error is None]
        await store.mark_published(acknowledged)
        self.published += len(acknowledged)
        # Rows the producer never took (after one it refused) wait for the next round.
        failed = [
            p
            for p, error in zip(pending, errors, strict=True)
            if error is not None and not isinstance(error, NotSent)
        ]
        if failed:
            kinds = Counter(type(e).__name__ for e in errors if e is not None)
            log.warning(
                "outbox relay: %d of %d rows not acknowledged (%s); "
                "sending them again one at a time",
                len(pending) - len(acknowledged), len(pending),
                ", ".join(f"{n} x {kind}" for kind, n in kinds.items()),
            )  # fmt: skip
            await self._publish_one_at_a_time(store, failed)
        return len(pending)

    async def _publish_one_at_a_time(self, store: OutboxStore, rows: list[PendingMessage]) -> None:
        """Each row alone, in id order, each on a producer no failure has touched.

        A row refused for a reason of its own is parked; any other failure is raised, so
        the rows from it on are retried later, still in order.
        """
        publisher = await self._fresh_publisher()
        for row in rows:
            [error] = await publisher.publish([row.message])
            if error is None:
                await store.mark_published([row.id])
                self.published += 1
                continue
            if not is_unpublishable(error):
                raise error
            await self._park(store, row, error)
            publisher = await self._fresh_publisher()

    async def _park(self, store: OutboxStore, row: PendingMessage, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        await store.park(row.id, reason)
        self.parked += 1
        m = row.message
        # Ids, topic and size only: a payload never goes to the log.
        log.error(
            "outbox row %d parked, it will not be published until re-queued "
            "(stockworker outbox retry %d): event_id=%s topic=%s size=%d bytes: %s",
            row.id, row.id, m.event_id, m.topic, published_size(m), reason,
        )  # fmt: skip
