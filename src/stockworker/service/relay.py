"""The outbox relay: publishes committed outbox rows in id order, then deletes them.

One relay leads at a time (the session's leadership), so events of one SKU leave in the
order their transactions committed. A crash between publish and delete re-publishes the
same rows with the same event ids: at least once, never lost.

One row the broker will never take (too large, an invalid topic) must not hold back
the rows behind it. When a batch fails, the rows the broker acknowledged are deleted,
the publisher is replaced (a refused batch leaves a gap in its partition's sequence
numbers) and the failed rows are sent again one at a time, in id order: one that fails
alone with such an error is *parked* (set aside with the reason, logged, listed by
`stockworker outbox parked`); any other error stops the round and the relay retries
from the oldest unpublished row. Rows the publisher was never given (it refused
an earlier one) go out in the next round.

Per-SKU order: a row acknowledged in a batch never overtakes an older row of its
partition that failed. The publisher refuses a row before any later one is handed to
it, and when the broker refuses a batch, every later batch of that partition from the
same idempotent producer fails on the sequence gap. Failed rows are then sent in id
order, each awaited before the next. Only a parked row is left behind.

The snapshot topic (service/snapshots.py): for each position a batch changes, the
snapshot of its last StockChanged in the batch is published, and acknowledged, before
the batch's own rows. So a StockChanged a subscriber can read always has its snapshot
(or a newer one) readable already: a subscriber that notes the change stream's end
offsets, then reads the snapshot topic to its end, misses no change (docs: "a new
service needs current stock"). Snapshots of one position leave in the order of their
rows, like the events. When a snapshot fails, the batch is sent row by row, each row
after its own snapshot.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from stockworker.faults import crash_point
from stockworker.service.limits import published_size
from stockworker.service.loops import Backoff, Stop, Unrecoverable, retry
from stockworker.service.observation import NO_OBSERVER, Observer
from stockworker.service.ports import (
    NotSent,
    OutboxMessage,
    OutboxSession,
    PendingMessage,
    Publisher,
)
from stockworker.service.snapshots import is_snapshot_row, latest_snapshots

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        open_session: Callable[[], Awaitable[OutboxSession]],
        new_publisher: Callable[[], Publisher],
        is_unpublishable: Callable[[Exception], bool],
        batch_size: int = 2000,
        idle_poll_seconds: float = 1.0,
        backoff: Backoff | None = None,
        describe_failure: Callable[[BaseException], str] = repr,
        snapshots: Callable[[list[OutboxMessage]], dict[int, OutboxMessage]] = latest_snapshots,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._open_session = open_session
        self._new_publisher = new_publisher
        self._is_unpublishable = is_unpublishable
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._backoff = backoff or Backoff()
        self._describe = describe_failure
        self._snapshots = snapshots
        self._observer = observer
        self._stop = Stop()
        self._publisher: Publisher | None = None
        self._connected = False
        self.published = 0
        self.parked = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Lead, publish, and on any failure back off and start again, until stopped.

        A failure no retry cures before the first session ever opened (a wrong
        password, no such database) ends it instead.
        """
        while not self._stop.is_set():
            await retry(
                self._run_once,
                retry_on=self._worth_retrying,
                backoff=self._backoff,
                what="in the outbox relay",
                stop=self._stop,
                describe=self._describe,
                on_retry=self._observer.retried,
            )

    def _worth_retrying(self, exc: BaseException) -> bool:
        return self._connected or not isinstance(exc, Unrecoverable)

    async def _run_once(self) -> None:
        session: OutboxSession | None = None
        leading = False
        try:
            # Built first: a publisher that cannot be built (a missing CA file) then
            # leaves no database session behind.
            self._publisher = self._new_publisher()
            session = await self._open_session()
            self._connected = True
            while not await session.try_lead():
                if await self._stop.wait(1.0):
                    return
            await self._publisher.start()
            log.info("outbox relay leading")
            leading = True
            self._observer.relay_leading(True)
            while not self._stop.is_set():
                if await self._publish_batch(session) == 0:
                    await session.wait_for_rows(self._idle_poll_seconds)
            # Stopping: flush what is committed already, so nothing waits for the next start.
            while await self._publish_batch(session):
                pass
        finally:
            if leading:
                self._observer.relay_leading(False)
            await self._stop_publisher()
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.close()

    async def _stop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.stop()

    async def _fresh_publisher(self) -> Publisher:
        """A new publisher (a new producer id, sequence numbers from zero)."""
        await self._stop_publisher()
        self._publisher = self._new_publisher()
        await self._publisher.start()
        return self._publisher

    async def _publish_batch(self, session: OutboxSession) -> int:
        """Publish the oldest unpublished rows; returns how many were dealt with."""
        assert self._publisher is not None
        pending = await session.fetch_unpublished(self._batch_size)
        if not pending:
            return 0
        messages = [p.message for p in pending]
        snapshots = self._snapshots(messages)
        published: Counter[str] = Counter()
        if snapshots:
            snapshot_errors = await self._publisher.publish(list(snapshots.values()))
            for snapshot, error in zip(snapshots.values(), snapshot_errors, strict=True):
                if error is None:
                    published[snapshot.topic] += 1
            if any(e is not None for e in snapshot_errors):
                log.warning(
                    "outbox relay: %d of %d snapshots not acknowledged; sending the batch's "
                    "%d rows one at a time",
                    sum(e is not None for e in snapshot_errors),
                    len(snapshots),
                    len(pending),
                )
                self._observer.events_published(published)
                await self._publish_one_at_a_time(session, pending)
                return len(pending)
        # Snapshot rows went out with the snapshots (or a later snapshot superseded them).
        rest = [i for i, m in enumerate(messages) if not is_snapshot_row(m)]
        errors: list[Exception | None] = [None] * len(messages)
        answers = await self._publisher.publish([messages[i] for i in rest])
        for i, answer in zip(rest, answers, strict=True):
            errors[i] = answer
            if answer is None:
                published[messages[i].topic] += 1
        self._observer.events_published(published)
        crash_point("relay-after-publish")
        acknowledged = [p.id for p, error in zip(pending, errors, strict=True) if error is None]
        await session.delete_published(acknowledged)
        self.published += len(acknowledged)
        # Rows the publisher never took (after one it refused) wait for the next round.
        failed = [
            p
            for p, error in zip(pending, errors, strict=True)
            if error is not None and not isinstance(error, NotSent)
        ]
        if failed:
            kinds = Counter(type(e).__name__ for e in errors if e is not None)
            log.warning(
                "outbox relay: %d of %d rows not acknowledged (%s); sending them again one "
                "at a time",
                len(pending) - len(acknowledged),
                len(pending),
                ", ".join(f"{n} x {kind}" for kind, n in kinds.items()),
            )
            await self._publish_one_at_a_time(session, failed)
        return len(pending)

    async def _publish_one_at_a_time(
        self, session: OutboxSession, rows: list[PendingMessage]
    ) -> None:
        """Each row alone, in id order, each on a publisher no failure has touched, the
        last row of a position after its snapshot.

        A row refused (or whose snapshot is refused) for a reason of its own is parked;
        any other failure is raised, so the rows from it on are retried later, in order.
        """
        publisher = await self._fresh_publisher()
        snapshots = self._snapshots([row.message for row in rows])
        published: Counter[str] = Counter()
        try:
            for i, row in enumerate(rows):
                error: Exception | None = None
                if i in snapshots:
                    [error] = await publisher.publish([snapshots[i]])
                    if error is None:
                        published[snapshots[i].topic] += 1
                if error is None and not is_snapshot_row(row.message):
                    [error] = await publisher.publish([row.message])
                    if error is None:
                        published[row.message.topic] += 1
                if error is None:
                    await session.delete_published([row.id])
                    self.published += 1
                    continue
                if not self._is_unpublishable(error):
                    raise error
                await self._park(session, row, error)
                publisher = await self._fresh_publisher()
        finally:
            self._observer.events_published(published)

    async def _park(self, session: OutboxSession, row: PendingMessage, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        await session.park(row.id, reason)
        self.parked += 1
        m = row.message
        # Ids, topic and size only: a payload never goes to the log.
        log.error(
            "outbox row %d parked, it will not be published until re-queued "
            "(stockworker outbox retry %d): event_id=%s topic=%s size=%d bytes: %s",
            row.id,
            row.id,
            m.event_id,
            m.topic,
            published_size(m),
            reason,
        )
