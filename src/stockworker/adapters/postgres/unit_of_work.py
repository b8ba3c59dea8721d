"""The service's UnitOfWork on PostgreSQL: one transaction on one pooled connection.

Statements are in queries.py; rows become records and back in tables.py (state) and
outbox_rows.py (inbox and outbox).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from uuid import UUID

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import DatabaseConnectionLost, describe_failure
from stockworker.adapters.postgres.outbox import RELAY_LEADER_LOCK
from stockworker.adapters.postgres.outbox_rows import (
    OUTBOX_CHANNEL,
    OUTBOX_COLUMNS,
    PROCESSED_COMMAND_COLUMNS,
    outbox_record,
    stored_result_from_row,
    stored_result_record,
)
from stockworker.adapters.postgres.tables import (
    HOLDINGS,
    ITEMS,
    LEDGER_COLUMNS,
    LOCATIONS,
    PO_LINES,
    POSITIONS,
    RESERVATIONS,
    Table,
    due_reservation_from_row,
    ledger_record,
    positions_from_rows,
)
from stockworker.domain.footprint import Footprint
from stockworker.domain.position import Holding, Position, PositionKey, Reservation
from stockworker.domain.state import StockState
from stockworker.service.ports import (
    SHARED_LOCK,
    DueLot,
    DueReservation,
    OutboxMessage,
    StateChanges,
    StoredResult,
)
from stockworker.service.replay import RecordedExpiry, WriteSink

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


# Hot names (positions, items) come back batch after batch: a bounded cache saves the
# hash (~0.5 us a name, two or three names a command).
@functools.lru_cache(maxsize=1 << 16)
def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock id for a name (the same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_modes(names: Iterable[str]) -> tuple[list[int], list[bool]]:
    """The advisory-lock ids of `names`, sorted, and whether each is taken shared (a name
    with the SHARED_LOCK prefix, unless the same name is also wanted exclusively)."""
    exclusive: set[int] = set()
    shared: set[int] = set()
    for name in names:
        if name.startswith(SHARED_LOCK):
            shared.add(lock_id(name[len(SHARED_LOCK) :]))
        else:
            exclusive.add(lock_id(name))
    shared -= exclusive
    ids = sorted(exclusive | shared)
    return ids, [i in shared for i in ids]


def _key_arrays(keys: Sequence[str] | Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Keys as the arrays `$1, $2, ...` a load by key takes: one per key column."""
    if isinstance(keys[0], tuple):
        return [list(column) for column in zip(*keys, strict=True)]
    return [list(keys)]


class PostgresUnitOfWork:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._tx: asyncpg.transaction.Transaction | None = None
        self._wrote_outbox = False

    @property
    def _connection(self) -> asyncpg.pool.PoolConnectionProxy:
        assert self._conn is not None, "use the unit of work inside `async with`"
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._pool.acquire()
        try:
            self._tx = self._conn.transaction()
            await self._tx.start()
        except BaseException:
            await self._pool.release(self._conn)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None and self._tx is not None
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        try:
            if exc is None:
                if self._wrote_outbox:
                    # Delivered at commit: the relay wakes up without polling.
                    await conn.execute(queries.NOTIFY_OUTBOX, OUTBOX_CHANNEL)
                await tx.commit()
                return
            try:
                await tx.rollback()
            except Exception as rollback_error:
                raise DatabaseConnectionLost(
                    f"{describe_failure(exc)}, then the rollback failed: "
                    f"{describe_failure(rollback_error)}"
                ) from exc
            if conn.is_closed():
                raise DatabaseConnectionLost(
                    f"{describe_failure(exc)}, and the connection closed"
                ) from exc
        finally:
            await self._pool.release(conn)

    async def lock(self, names: Iterable[str]) -> None:
        lock_ids, shared = lock_modes(names)
        if lock_ids:
            await self._connection.execute(queries.LOCK, lock_ids, shared)

    async def load_state(self, footprint: Footprint) -> StockState:
        conn = self._connection
        items = await self._load(ITEMS, queries.LOAD_ITEMS, footprint.items)
        positions: list[Position] = []
        if footprint.positions:
            keys = _key_arrays(footprint.positions)
            # Holdings only for tracked items: a batch of untracked ones reads nothing more.
            tracked = {i.sku for i in items if i.tracking != "none"}
            tracked_keys = [k for k in footprint.positions if k.sku in tracked]
            positions = positions_from_rows(
                await conn.fetch(queries.LOAD_RESERVATIONS, *keys),
                await conn.fetch(queries.LOAD_POSITIONS, *keys),
                await conn.fetch(queries.LOAD_HOLDINGS, *_key_arrays(tracked_keys))
                if tracked_keys
                else (),
            )
        owners: list[tuple[str, PositionKey]] = []
        if footprint.reservations:
            rows = await conn.fetch(queries.RESERVATION_OWNERS, list(footprint.reservations))
            owners = [(r["reservation_id"], PositionKey(r["sku"], r["location"])) for r in rows]
        serials: list[tuple[str, str, str]] = []
        if footprint.serials:
            rows = await conn.fetch(queries.SERIAL_LOCATIONS, *_key_arrays(footprint.serials))
            serials = [(r["sku"], r["id"], r["location"]) for r in rows]
        stocked: list[PositionKey] = []
        if footprint.stocked_items:
            rows = await conn.fetch(queries.STOCKED_POSITIONS, list(footprint.stocked_items))
            stocked = [PositionKey(r["sku"], r["location"]) for r in rows]
        return StockState.of(
            positions,
            await self._load(PO_LINES, queries.LOAD_PO_LINES, footprint.po_lines),
            await self._load(LOCATIONS, queries.LOAD_LOCATIONS, footprint.locations),
            items,
            owners,
            serials,
            stocked,
        )

    async def _load(
        self, table: Table[R], query: str, keys: Sequence[str] | Sequence[tuple[Any, ...]]
    ) -> list[R]:
        if not keys:
            return []
        return [table.from_row(r) for r in await self._connection.fetch(query, *_key_arrays(keys))]

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        ids = list(command_ids)
        if not ids:
            return {}
        rows = await self._connection.fetch(queries.LOAD_RESULTS, ids)
        return {r["command_id"]: stored_result_from_row(r) for r in rows}

    async def save(self, changes: StateChanges) -> None:
        if changes.positions:
            await self._upsert(queries.SAVE_POSITIONS, POSITIONS, [p for _, p in changes.positions])
            await self._save_reservations(changes.positions)
            await self._save_holdings(changes.positions)
        await self._upsert(queries.SAVE_PO_LINES, PO_LINES, changes.po_lines)
        await self._upsert(queries.SAVE_LOCATIONS, LOCATIONS, changes.locations)
        await self._upsert(queries.SAVE_ITEMS, ITEMS, changes.items)
        if changes.ledger:
            await self._connection.copy_records_to_table(
                "stock_ledger",
                columns=LEDGER_COLUMNS,
                records=[ledger_record(e) for e in changes.ledger],
            )

    async def _upsert(
        self, query: str, table: Table[R], records: Sequence[R], owners: Sequence[object] = ()
    ) -> None:
        if records:
            await self._connection.execute(query, *table.to_columns(records, owners))

    async def _save_reservations(
        self, positions: Sequence[tuple[Position | None, Position]]
    ) -> None:
        """Write only the reservations that changed; delete the closed ones."""
        changed: list[Reservation] = []
        holders: list[Position] = []
        closed: list[str] = []
        for original, current in positions:
            before = original.reservations if original else {}
            closed.extend(r for r in before if r not in current.reservations)
            for reservation in current.reservations.values():
                if before.get(reservation.reservation_id) != reservation:
                    changed.append(reservation)
                    holders.append(current)
        if closed:
            await self._connection.execute(queries.DELETE_RESERVATIONS, closed)
        await self._upsert(queries.SAVE_RESERVATIONS, RESERVATIONS, changed, holders)

    async def _save_holdings(self, positions: Sequence[tuple[Position | None, Position]]) -> None:
        """Write only the holdings that changed; delete those no longer held (first, so a
        serial number moving between locations is never in two rows at once)."""
        changed: list[Holding] = []
        holders: list[Position] = []
        gone: list[tuple[str, str, str]] = []
        for original, current in positions:
            before = original.holdings if original else {}
            if before is current.holdings:
                continue
            gone.extend(
                (current.sku, current.location, h) for h in before if h not in current.holdings
            )
            for holding in current.holdings.values():
                if before.get(holding.id) != holding:
                    changed.append(holding)
                    holders.append(current)
        if gone:
            await self._connection.execute(queries.DELETE_HOLDINGS, *_key_arrays(gone))
        await self._upsert(queries.SAVE_HOLDINGS, HOLDINGS, changed, holders)

    async def try_lead_expiry(self) -> bool:
        return bool(await self._connection.fetchval(queries.TRY_EXPIRY_LEADERSHIP))

    async def due_reservations(
        self, now: datetime, limit: int, after: DueReservation | None = None
    ) -> Sequence[DueReservation]:
        rows = await self._connection.fetch(
            queries.DUE_RESERVATIONS,
            now,
            limit,
            after.expires_at if after else None,
            after.reservation_id if after else None,
        )
        return [due_reservation_from_row(r) for r in rows]

    async def due_lots(
        self, today: date, expiring_by: date, limit: int, after: DueLot | None = None
    ) -> Sequence[DueLot]:
        rows = await self._connection.fetch(
            queries.DUE_LOTS,
            today,
            expiring_by,
            limit,
            after.expires_on if after else None,
            after.position.sku if after else None,
            after.position.location if after else None,
            after.lot if after else None,
        )
        return [
            DueLot(
                PositionKey(r["sku"], r["location"]),
                r["id"],
                r["expires_on"],
                r["sequence"],
                r["stage"],
            )
            for r in rows
        ]

    async def save_results(self, results: Sequence[StoredResult]) -> None:
        if results:
            await self._connection.copy_records_to_table(
                "processed_command",
                columns=PROCESSED_COMMAND_COLUMNS,
                records=[stored_result_record(r) for r in results],
            )

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        if messages:
            await self._connection.copy_records_to_table(
                "outbox", columns=OUTBOX_COLUMNS, records=[outbox_record(m) for m in messages]
            )
            self._wrote_outbox = True


class PostgresUnitOfWorkFactory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool)


async def all_positions(conn: asyncpg.Connection | asyncpg.Pool) -> list[Position]:
    """Every position with its reservations and holdings, ordered by key (audit and the
    tests' checks)."""
    return positions_from_rows(
        await conn.fetch(queries.ALL_RESERVATIONS),
        await conn.fetch(queries.ALL_POSITIONS),
        await conn.fetch(queries.ALL_HOLDINGS),
    )


# Replay and rebuild (stockworker replay / rebuild): units of work that report what
# they wrote once it is committed, one that writes no outbox (a rebuild's target has no
# relay), and one inside a transaction that is rolled back in the end (--what-if).


class RecordingUnitOfWork(PostgresUnitOfWork):
    """The worker's unit of work, telling `sink` what each committed transaction wrote.
    With `write_outbox=False` outbox messages are reported but not written."""

    def __init__(self, pool: asyncpg.Pool, sink: WriteSink, write_outbox: bool = True) -> None:
        super().__init__(pool)
        self._sink = sink
        self._write_outbox = write_outbox
        self._changes: list[StateChanges] = []
        self._messages: list[OutboxMessage] = []

    async def save(self, changes: StateChanges) -> None:
        await super().save(changes)
        self._changes.append(changes)

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        if self._write_outbox:
            await super().append_outbox(messages)
        self._messages.extend(messages)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        changes, messages = self._changes, self._messages
        self._changes, self._messages = [], []
        await super().__aexit__(exc_type, exc, tb)
        if exc is None:
            self._sink.committed(changes, messages)


class _SavepointUnitOfWork(RecordingUnitOfWork):
    """A savepoint in the held connection's open transaction instead of a transaction."""

    def __init__(
        self, pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy, sink: WriteSink
    ) -> None:
        super().__init__(pool, sink)
        self._held = conn

    async def __aenter__(self) -> Self:
        self._conn = self._held
        self._tx = self._held.transaction()
        await self._tx.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        tx, self._tx, self._conn = self._tx, None, None
        changes, messages = self._changes, self._messages
        self._changes, self._messages = [], []
        if exc is None:
            await tx.commit()  # releases the savepoint; the outer transaction decides
            self._sink.committed(changes, messages)
        else:
            await tx.rollback()


class RecordingUnitOfWorkFactory:
    def __init__(self, pool: asyncpg.Pool, sink: WriteSink, write_outbox: bool = True) -> None:
        self._pool = pool
        self._sink = sink
        self._write_outbox = write_outbox

    def __call__(self) -> RecordingUnitOfWork:
        return RecordingUnitOfWork(self._pool, self._sink, self._write_outbox)


@asynccontextmanager
async def rolled_back(
    pool: asyncpg.Pool, sink: WriteSink, lock_first: Collection[str] = ()
) -> AsyncIterator[Callable[[], RecordingUnitOfWork]]:
    """Units of work that are savepoints of one transaction, rolled back at the end
    (whatever happens): each sees what the ones before it wrote, nothing is kept.

    The transaction first takes the advisory locks `lock_first`, all at once, in the
    worker's order (sorted lock ids): the savepoints then take only locks it holds, so
    it never waits for a lock while holding others taken out of order. They are held
    until the rollback, so the worker waits for those positions meanwhile."""
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    try:
        lock_ids, shared = lock_modes(lock_first)
        if lock_ids:
            await conn.execute(queries.LOCK, lock_ids, shared)
        yield lambda: _SavepointUnitOfWork(pool, conn, sink)
    finally:
        try:
            await tx.rollback()
        finally:
            await pool.release(conn)


class RolledBack:
    """The Scratch port of service/replay.py (--what-if) over a pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def rolled_back(
        self, sink: WriteSink, lock_first: Collection[str]
    ) -> AbstractAsyncContextManager[Callable[[], RecordingUnitOfWork]]:
        return rolled_back(self._pool, sink, lock_first)


class PostgresInbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def holding(self, command_ids: Sequence[UUID]) -> set[UUID]:
        if not command_ids:
            return set()
        rows = await self._pool.fetch(queries.REPLAY_IN_INBOX, list(command_ids))
        return {r["command_id"] for r in rows}


async def relay_running(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """Whether an outbox relay holds its leadership lock in this database."""
    return bool(await conn.fetchval(queries.REPLAY_RELAY_RUNNING, RELAY_LEADER_LOCK))


async def rows_held(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """How many positions, inbox entries and ledger entries the database holds."""
    row = await conn.fetchrow(queries.REBUILD_TARGET_ROWS)
    assert row is not None
    return {"positions": row["positions"], "inbox": row["inbox"], "ledger": row["ledger"]}


async def recorded_expiries(conn: asyncpg.Connection | asyncpg.Pool) -> list[RecordedExpiry]:
    """The reservation expiries the sweeper applied, from the ledger."""
    return [
        RecordedExpiry(
            sku=r["sku"],
            location=r["location"],
            version=r["version"],
            command_id=r["command_id"],
            occurred_at=r["occurred_at"],
            after_command_id=r["after_command_id"],
        )
        for r in await conn.fetch(queries.REBUILD_EXPIRIES)
    ]
