"""Releases reservations whose expires_at has passed, as the worker's own commands.

Each sweep finds due reservations and applies an ExpireReservation for each through
the same path as commands from Kafka (locks, inbox, ledger, outbox), so an expiry has
the events of a release with the cause EXPIRED. The command_id is derived from the
reservation *instance* (its position and the version that created it, besides its id
and expiry), so a sweep repeated after a crash applies it once, while a reservation
re-made later under the same reservation_id gets an expiry of its own. A sweep pages
through everything due in (expires_at, reservation_id) order, so no row it cannot
expire keeps the others waiting.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from stockworker.contract.commands import ExpireReservation
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.batch_state import BatchReport
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.loops import Stop, log_failure, repeat
from stockworker.service.observation import NO_OBSERVER, RESERVATION_EXPIRY, Observer
from stockworker.service.ports import DueReservation, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


def expiry_command(due: DueReservation, now: datetime) -> ExpireReservation:
    instance = "\x00".join(
        (due.reservation_id, due.position.sku, due.position.location, str(due.sequence))
    )
    return ExpireReservation(
        command_id=uuid.uuid5(
            EVENT_ID_NAMESPACE, f"expire/{instance}/{due.expires_at.isoformat()}"
        ),
        occurred_at=now,
        sku=due.position.sku,
        location=due.position.location,
        reservation_id=due.reservation_id,
    )


class ReservationExpiry:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        service: CommandBatchService,
        clock: Callable[[], datetime],
        is_transient: Callable[[BaseException], bool],
        interval_seconds: float = 5.0,
        batch_size: int = 500,
        describe_failure: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._observer = observer
        self._service = service
        self._clock = clock
        self._is_transient = is_transient
        self._describe = describe_failure
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._stop = Stop()

    async def sweep(self) -> BatchReport:
        """Expire what is due now, a page per transaction; one sweeper at a time."""
        now = self._clock()
        total = BatchReport()
        after: DueReservation | None = None
        while not self._stop.is_set():
            page = await self._expire_page(now, after)
            if page is None:  # another worker sweeps
                break
            due, report = page
            total += report
            if len(due) < self._batch_size:
                break
            after = due[-1]
        return total

    async def _expire_page(
        self, now: datetime, after: DueReservation | None
    ) -> tuple[Sequence[DueReservation], BatchReport] | None:
        due: Sequence[DueReservation] = ()
        try:
            async with self._unit_of_work() as uow:
                if not await uow.try_lead_expiry():
                    return None
                due = await uow.due_reservations(now, self._batch_size, after)
                return due, await self._expire(uow, due, now)
        except Exception as exc:
            if self._is_transient(exc) or not due:
                raise
            reason = self._describe(exc)
            log.error("expiring %d reservations failed (%s); one at a time now", len(due), reason)
        # One reservation the database refuses must not keep the others from expiring.
        report = BatchReport()
        for one in due:
            try:
                async with self._unit_of_work() as uow:
                    report += await self._expire(uow, [one], now)
            except Exception as exc:
                if self._is_transient(exc):
                    raise
                reason = self._describe(exc)
                log.error(
                    "reservation %s not expired (%s); left for the next sweep",
                    one.reservation_id,
                    reason,
                )
        return due, report

    async def _expire(
        self, uow: UnitOfWork, due: Sequence[DueReservation], now: datetime
    ) -> BatchReport:
        if not due:
            return BatchReport()
        entries = [(None, expiry_command(d, now)) for d in due]
        return await self._service.apply_in(uow, entries, republish_duplicates=False)

    async def _sweep_and_say(self) -> None:
        report = await self.sweep()
        self._observer.swept(RESERVATION_EXPIRY, report.applied)
        if report.applied:
            log.info("expired %d reservations", report.applied)

    async def run(self) -> None:
        await repeat(
            self._sweep_and_say,
            interval_seconds=self._interval,
            stop=self._stop,
            on_error=log_failure(
                "reservation expiry", self._is_transient, self._describe, self._observer.retried
            ),
        )

    def stop(self) -> None:
        self._stop.set()
