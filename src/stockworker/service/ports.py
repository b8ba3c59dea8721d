"""What the service needs from the outside world, as Protocols.

The PostgreSQL adapter implements them for real; tests/unit use an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from stockworker.domain.catalog import Item, Location
from stockworker.domain.footprint import Footprint
from stockworker.domain.ledger import LedgerEntry
from stockworker.domain.position import Position, PositionKey
from stockworker.domain.purchasing import PoLine
from stockworker.domain.state import StockState

# Kafka header values may be null.
Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One record as it came off the commands topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    # The trace context its results and events carry, when not the record's own
    # (adapters/tracing.py: the worker's span for it). Its headers stay as they came, for
    # a dead letter.
    trace: Headers | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to publish once the transaction that wrote it has committed."""

    event_id: UUID
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The inbox entry of a processed command: its result message, republished on a repeat."""

    command_id: UUID
    result: OutboxMessage
    # Of the command's canonical payload (domain/idempotency.py); None in rows written
    # before fingerprints were kept.
    fingerprint: bytes | None = None


# A lock name with this prefix is held in shared mode: holders of the shared name do not
# wait for each other, only for a holder of the name without the prefix (exclusive).
SHARED_LOCK = "shared\x00"


@dataclass(frozen=True, slots=True)
class DueReservation:
    reservation_id: str
    position: PositionKey
    expires_at: datetime
    # The position version that created this reservation: with the position, it tells
    # apart two reservations that reused one reservation_id.
    sequence: int


@dataclass(frozen=True, slots=True)
class DueLot:
    """A lot with stock whose expiry is to be reported (`stage` expiring) or applied
    (expired)."""

    position: PositionKey
    lot: str
    expires_on: date
    # When it arrived at the position: with the position, it tells a lot apart from one
    # received later under the same code.
    sequence: int
    stage: str


@dataclass(frozen=True, slots=True)
class StateChanges:
    """Everything a batch changed, to be written in its transaction.

    `positions` pairs each changed position with the one loaded at the start (None when
    it did not exist), so the adapter can write only the reservations that changed.
    """

    positions: Sequence[tuple[Position | None, Position]] = ()
    po_lines: Sequence[PoLine] = ()
    locations: Sequence[Location] = ()
    items: Sequence[Item] = ()
    ledger: Sequence[LedgerEntry] = ()


class UnitOfWork(Protocol):
    """One database transaction: commit on clean exit, roll back on an exception."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def lock(self, names: Iterable[str]) -> None:
        """Serialise with every other writer of these named things until commit; a
        name starting with SHARED_LOCK only with an exclusive holder of the rest."""

    async def load_state(self, footprint: Footprint) -> StockState:
        """The stored state a batch with this footprint reads, reservations included."""

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        """Inbox entries of the commands already processed among `command_ids`."""

    async def save(self, changes: StateChanges) -> None: ...

    async def save_results(self, results: Sequence[StoredResult]) -> None: ...

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None: ...

    async def try_lead_expiry(self) -> bool:
        """Whether this transaction may sweep expired reservations (one sweeper at a time)."""

    async def due_reservations(
        self, now: datetime, limit: int, after: DueReservation | None = None
    ) -> Sequence[DueReservation]:
        """Open reservations whose expires_at is not after `now`, in (expires_at,
        reservation_id) order, starting after `after`."""

    async def due_lots(
        self, today: date, expiring_by: date, limit: int, after: DueLot | None = None
    ) -> Sequence[DueLot]:
        """Lots not yet expired whose expires_on is before `today` (stage expired), or
        not yet reported and not after `expiring_by` (stage expiring), in (expires_on,
        sku, location, lot) order, starting after `after`."""


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox row waiting to be published: its id (publication order) and message."""

    id: int
    message: OutboxMessage


class NotSent(Exception):
    """A message the publisher was never given: an earlier one of its batch was refused."""


class OutboxSession(Protocol):
    """One relay's session with the outbox; leadership lasts as long as the session."""

    async def try_lead(self) -> bool:
        """Become the only relay publishing (so events leave in commit order)."""

    async def wait_for_rows(self, seconds: float) -> None:
        """Return when new rows may have been committed, or after `seconds`."""

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        """The oldest rows neither published nor parked, in id order."""

    async def delete_published(self, ids: Sequence[int]) -> None:
        """The broker acknowledged these rows: they leave the outbox."""

    async def park(self, id: int, reason: str) -> None:
        """Set a row aside that can never be published as it is."""

    async def close(self) -> None: ...


class Publisher(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Exception | None]:
        """Send in order; per message None once acknowledged, or its error (NotSent for
        those never handed over after a refused one)."""
