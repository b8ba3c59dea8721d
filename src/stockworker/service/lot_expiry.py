"""Reports lots coming close to their expiry date and expires those past it, as the
worker's own commands (ExpireLot), the way service/expiry.py expires reservations.

A lot with stock and an expiry date gets an ExpireLot `expiring` once it is within
STOCKWORKER_LOT_EXPIRING_DAYS of its expires_on (a LotExpiring event), and `expired`
once that day has passed in UTC (LotExpired; its free units stop being available). The
clock is read here, never in the domain, which judges by the command's occurred_at.
The command_id is derived from the lot at its position and when it arrived there, so a
sweep repeated after a crash applies each once. One sweeper at a time (the lock the
reservation sweep takes), paging through everything due.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from stockworker.contract.commands import ExpireLot
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.batch_state import BatchReport
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.observation import LOT_EXPIRY, NO_OBSERVER, Observer
from stockworker.service.ports import DueLot, UnitOfWorkFactory
from stockworker.service.sweeps import PagedSweep

log = logging.getLogger(__name__)


def lot_expiry_command(due: DueLot, now: datetime) -> ExpireLot:
    instance = "\x00".join((due.position.sku, due.position.location, due.lot, str(due.sequence)))
    return ExpireLot(
        command_id=uuid.uuid5(EVENT_ID_NAMESPACE, f"lot-expiry/{instance}/{due.stage}"),
        occurred_at=now,
        sku=due.position.sku,
        location=due.position.location,
        lot=due.lot,
        stage="expired" if due.stage == "expired" else "expiring",
    )


class LotExpiry(PagedSweep[DueLot]):
    name = "lot expiry"
    kind = LOT_EXPIRY
    applied_message = "reported or expired %d lots"

    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        service: CommandBatchService,
        clock: Callable[[], datetime],
        is_transient: Callable[[BaseException], bool],
        expiring_days: int = 30,
        interval_seconds: float = 5.0,
        batch_size: int = 500,
        describe_failure: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        super().__init__(
            unit_of_work,
            service,
            clock,
            is_transient,
            interval_seconds,
            batch_size,
            describe_failure,
            observer,
        )
        self._expiring_days = expiring_days

    async def _page(
        self, now: datetime, after: DueLot | None
    ) -> tuple[Sequence[DueLot], BatchReport] | None:
        today = now.astimezone(UTC).date()
        async with self._unit_of_work() as uow:
            if not await uow.try_lead_expiry():
                return None
            due = await uow.due_lots(
                today, today + timedelta(days=self._expiring_days), self._batch_size, after
            )
            if not due:
                return due, BatchReport()
            entries = [(None, lot_expiry_command(d, now)) for d in due]
            # A lot gone meanwhile is refused (LOT_NOT_FOUND) like any command: harmless.
            report = await self._service.apply_in(uow, entries, republish_duplicates=False)
            return due, report
