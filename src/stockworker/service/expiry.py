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
from collections.abc import Sequence
from datetime import datetime

from stockworker.contract.commands import ExpireReservation
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.batch_state import BatchReport
from stockworker.service.observation import RESERVATION_EXPIRY
from stockworker.service.ports import DueReservation, UnitOfWork
from stockworker.service.sweeps import PagedSweep

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


class ReservationExpiry(PagedSweep[DueReservation]):
    name = "reservation expiry"
    kind = RESERVATION_EXPIRY
    applied_message = "expired %d reservations"

    async def _page(
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
