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

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from stockworker.contract.commands import ExpireReservation
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.command_batch import BatchReport, CommandBatchService
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
    ) -> None:
        self._unit_of_work = unit_of_work
        self._service = service
        self._clock = clock
        self._is_transient = is_transient
        self._describe = describe_failure
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    async def sweep(self) -> BatchReport:
        """Expire what is due now, a page per transaction; one sweeper at a time."""
        now = self._clock()
        total = BatchReport()
        after: DueReservation | None = None
        while not self._stopping.is_set():
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
            log.error("expiring %d reservations failed (%s); expiring them one at a time",
                      len(due), self._describe(exc))  # fmt: skip
        # One reservation the database refuses must not keep the others from expiring.
        report = BatchReport()
        for one in due:
            try:
                async with self._unit_of_work() as uow:
                    report += await self._expire(uow, [one], now)
            except Exception as exc:
                if self._is_transient(exc):
                    raise
                log.error("reservation %s could not be expired (%s); left for the next sweep",
                          one.reservation_id, self._describe(exc))  # fmt: skip
        return due, report

    async def _expire(
        self, uow: UnitOfWork, due: Sequence[DueReservation], now: datetime
    ) -> BatchReport:
        if not due:
            return BatchReport()
        entries = [(None, expiry_command(d, now)) for d in due]
        return await self._service.apply_in(uow, entries, republish_duplicates=False)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                report = await self.sweep()
                if report.applied:
                    log.info("expired %d reservations", report.applied)
            except Exception as exc:
                if not self._is_transient(exc):
                    log.error("reservation expiry failed (%s); retrying after the interval",
                              self._describe(exc))  # fmt: skip
                else:
                    log.warning("reservation expiry: transient failure %s", self._describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    def stop(self) -> None:
        self._stopping.set()
