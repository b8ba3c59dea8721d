"""An in-memory UnitOfWork with the same transactional behaviour as the PostgreSQL one:
changes become visible only on commit, and an exception discards them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from stockworker.domain.footprint import Footprint
from stockworker.domain.ledger import LedgerEntry
from stockworker.domain.position import Position, PositionKey
from stockworker.domain.state import StockState
from stockworker.service.ports import (
    DueLot,
    DueReservation,
    OutboxMessage,
    StateChanges,
    StoredResult,
)


@dataclass
class FakeDatabase:
    state: StockState = field(default_factory=StockState)
    results: dict[UUID, StoredResult] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    fail_next_commit: BaseException | None = None
    commits: int = 0
    # How many distinct locks each unit of work took, in order.
    locks_taken: list[int] = field(default_factory=list)

    @property
    def positions(self) -> dict[PositionKey, Position]:
        return self.state.positions


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._changes: list[StateChanges] = []
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
        state = self._db.state
        for changes in self._changes:
            for _, p in changes.positions:
                p.check_invariants()  # the database's CHECK constraints
                state.put_position(p)
            state.po_lines.update({line.key: line for line in changes.po_lines})
            state.locations.update({x.code: x for x in changes.locations})
            state.items.update({i.sku: i for i in changes.items})
            self._db.ledger.extend(changes.ledger)
        for r in self._results:
            assert r.command_id not in self._db.results, "inbox primary key"
            self._db.results[r.command_id] = r
        self._db.outbox.extend(self._outbox)
        self._db.commits += 1

    async def lock(self, names: Iterable[str]) -> None:
        self._db.locks_taken.append(len(set(names)))

    async def load_state(self, footprint: Footprint) -> StockState:
        state = self._db.state
        return StockState.of(
            positions=[state.positions[k] for k in footprint.positions if k in state.positions],
            po_lines=[state.po_lines[k] for k in footprint.po_lines if k in state.po_lines],
            locations=[state.locations[c] for c in footprint.locations if c in state.locations],
            items=[state.items[s] for s in footprint.items if s in state.items],
            other_reservations=[
                (r, state.reservation_owners[r])
                for r in footprint.reservations
                if r in state.reservation_owners
            ],
            serials_elsewhere=[
                (sku, serial, state.serial_locations[sku, serial])
                for sku, serial in footprint.serials
                if (sku, serial) in state.serial_locations
            ],
            stocked=[
                k
                for k, p in state.positions.items()
                if k.sku in footprint.stocked_items and p.on_hand
            ],
        )

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        return {c: self._db.results[c] for c in command_ids if c in self._db.results}

    async def save(self, changes: StateChanges) -> None:
        self._changes.append(changes)

    async def save_results(self, results: Sequence[StoredResult]) -> None:
        self._results.extend(results)

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        self._outbox.extend(messages)

    async def try_lead_expiry(self) -> bool:
        return True

    async def due_lots(
        self, today: date, expiring_by: date, limit: int, after: DueLot | None = None
    ) -> Sequence[DueLot]:
        due = []
        for p in self._db.state.positions.values():
            for h in p.holdings.values():
                if h.kind != "lot" or h.expires_on is None or h.expired:
                    continue
                if h.expires_on < today:
                    stage = "expired"
                elif not h.warned and h.expires_on <= expiring_by:
                    stage = "expiring"
                else:
                    continue
                due.append(DueLot(p.key, h.id, h.expires_on, h.sequence, stage))
        due.sort(key=lambda d: (d.expires_on, d.position, d.lot))
        if after is not None:
            due = [
                d
                for d in due
                if (d.expires_on, d.position, d.lot) > (after.expires_on, after.position, after.lot)
            ]
        return due[:limit]

    async def due_reservations(
        self, now: datetime, limit: int, after: DueReservation | None = None
    ) -> Sequence[DueReservation]:
        due = sorted(
            (
                DueReservation(r.reservation_id, p.key, r.expires_at, r.sequence)
                for p in self._db.state.positions.values()
                for r in p.reservations.values()
                if r.expires_at is not None and r.expires_at <= now
            ),
            key=lambda d: (d.expires_at, d.reservation_id),
        )
        if after is not None:
            due = [d for d in due if (d.expires_at, d.reservation_id) >
                   (after.expires_at, after.reservation_id)]  # fmt: skip
        return due[:limit]
