"""An in-memory UnitOfWork with the same transactional behaviour as the PostgreSQL one:
changes become visible only on commit, and an exception discards them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from uuid import UUID

from stockworker.domain.position import Position, PositionKey
from stockworker.service.ports import OutboxMessage, StoredResult


@dataclass
class FakeDatabase:
    positions: dict[PositionKey, Position] = field(default_factory=dict)
    results: dict[UUID, StoredResult] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)
    fail_next_commit: BaseException | None = None
    commits: int = 0


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._positions: list[Position] = []
        self._results: list[StoredResult] = []
        self._outbox: list[OutboxMessage] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        if self._db.fail_next_commit is not None:
            failure, self._db.fail_next_commit = self._db.fail_next_commit, None
            raise failure
        for p in self._positions:
            p.check_invariants()  # the database's CHECK constraints
            self._db.positions[p.key] = p
        for r in self._results:
            assert r.command_id not in self._db.results, "inbox primary key"
            self._db.results[r.command_id] = r
        self._db.outbox.extend(self._outbox)
        self._db.commits += 1

    async def lock_positions(self, keys: Iterable[PositionKey]) -> None:
        return None

    async def load_positions(self, keys: Iterable[PositionKey]) -> Mapping[PositionKey, Position]:
        return {k: self._db.positions[k] for k in keys if k in self._db.positions}

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        return {c: self._db.results[c] for c in command_ids if c in self._db.results}

    async def save_positions(self, positions: Sequence[Position]) -> None:
        self._positions.extend(positions)

    async def save_results(self, results: Sequence[StoredResult]) -> None:
        self._results.extend(results)

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        self._outbox.extend(messages)
