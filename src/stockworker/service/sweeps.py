"""What the worker's own expiry sweeps share: at an interval, one sweeper at a time (the
units of work elect it), through everything due a page per transaction, each page
applied as the worker's own commands. Subclasses say how a page is read and applied."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from stockworker.service.batch_state import BatchReport
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.loops import Stop, log_failure, repeat
from stockworker.service.observation import NO_OBSERVER, Observer
from stockworker.service.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

Due = TypeVar("Due")


class PagedSweep(Generic[Due]):
    # What the sweep is called in logs and metrics, and how its log line says what it did.
    name = ""
    kind = ""
    applied_message = ""

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
        self._service = service
        self._clock = clock
        self._is_transient = is_transient
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._describe = describe_failure
        self._observer = observer
        self._stop = Stop()

    async def sweep(self) -> BatchReport:
        """Apply what is due now, a page per transaction; one sweeper at a time."""
        now = self._clock()
        total = BatchReport()
        after: Due | None = None
        while not self._stop.is_set():
            page = await self._page(now, after)
            if page is None:  # another worker sweeps
                break
            due, report = page
            total += report
            if len(due) < self._batch_size:
                break
            after = due[-1]
        return total

    async def _page(
        self, now: datetime, after: Due | None
    ) -> tuple[Sequence[Due], BatchReport] | None:
        """The page after `after` and what applying it did; None when another sweeps."""
        raise NotImplementedError

    async def _sweep_and_say(self) -> None:
        report = await self.sweep()
        self._observer.swept(self.kind, report.applied)
        if report.applied:
            log.info(self.applied_message, report.applied)

    async def run(self) -> None:
        await repeat(
            self._sweep_and_say,
            interval_seconds=self._interval,
            stop=self._stop,
            on_error=log_failure(
                self.name, self._is_transient, self._describe, self._observer.retried
            ),
        )

    def stop(self) -> None:
        self._stop.set()
