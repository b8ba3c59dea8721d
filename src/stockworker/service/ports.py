"""What the service needs from the outside world, as Protocols.

The PostgreSQL adapter implements them for real; tests/unit use an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from stockworker.domain.position import Position, PositionKey

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


class UnitOfWork(Protocol):
    """One database transaction: commit on clean exit, roll back on an exception."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def lock_positions(self, keys: Iterable[PositionKey]) -> None:
        """Serialise with every other writer of these positions until commit."""

    async def load_positions(self, keys: Iterable[PositionKey]) -> Mapping[PositionKey, Position]:
        """The existing positions among `keys` (absent ones are left out)."""

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        """Inbox entries of the commands already processed among `command_ids`."""

    async def save_positions(self, positions: Sequence[Position]) -> None: ...

    async def save_results(self, results: Sequence[StoredResult]) -> None: ...

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
