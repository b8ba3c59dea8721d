"""What the worker tells its metrics: a port, called per batch and per round, never per
command (the per-command outcome counts travel in BatchReport.outcomes).

The adapter (adapters/metrics) turns these calls into Prometheus instruments; the
default, `NO_OBSERVER`, does nothing, so unit tests and operator commands need nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from stockworker.service.batch_state import BatchReport

# The sweeps, as the `sweep` label names them.
RESERVATION_EXPIRY: Final = "reservation_expiry"
LOT_EXPIRY: Final = "lot_expiry"
INBOX_RETENTION: Final = "inbox_retention"
OUTBOX_RETENTION: Final = "outbox_retention"


class Observer(Protocol):
    """Implementations must not raise: the calls sit between a commit and what follows
    it (offsets, the outbox's delete), and metrics must never change a command's fate."""

    def batch_applied(self, report: BatchReport, records: int, seconds: float) -> None:
        """A batch of `records` from the commands topic was applied (its transactions
        committed) in `seconds`; `report.outcomes` counts its commands by outcome."""

    def retried(self, failure: BaseException) -> None:
        """A transient failure: the work is tried again after a pause."""

    def events_published(self, by_topic: Mapping[str, int]) -> None:
        """The relay's publisher had this many messages acknowledged, by topic."""

    def relay_leading(self, leading: bool) -> None:
        """The relay in this process became the outbox's one publisher, or stopped being."""

    def swept(self, sweep: str, rows: int) -> None:
        """A sweep round ended, having dealt with `rows` rows."""


class NoObserver:
    """Observes nothing: the default."""

    def batch_applied(self, report: BatchReport, records: int, seconds: float) -> None:
        pass

    def retried(self, failure: BaseException) -> None:
        pass

    def events_published(self, by_topic: Mapping[str, int]) -> None:
        pass

    def relay_leading(self, leading: bool) -> None:
        pass

    def swept(self, sweep: str, rows: int) -> None:
        pass


NO_OBSERVER: Final[Observer] = NoObserver()
