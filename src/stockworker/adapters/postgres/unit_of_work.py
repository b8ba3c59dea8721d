"""The service's UnitOfWork on PostgreSQL: one transaction on one pooled connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Self
from uuid import UUID

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import DatabaseConnectionLost, describe_failure
from stockworker.domain.catalog import Item, Location
from stockworker.domain.footprint import Footprint
from stockworker.domain.ledger import QUANTITY_FIELDS
from stockworker.domain.position import Position, PositionKey, Reservation
from stockworker.domain.purchasing import PoLine
from stockworker.domain.state import StockState
from stockworker.domain.valuation import money
from stockworker.service.ports import DueReservation, OutboxMessage, StateChanges, StoredResult

OUTBOX_CHANNEL = "stockworker_outbox"


def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock id for a name (the same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _position(row: asyncpg.Record, reservations: Mapping[str, Reservation]) -> Position:
    return Position(
        sku=row["sku"],
        location=row["location"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        picked=row["picked"],
        on_order=row["on_order"],
        back_ordered=row["back_ordered"],
        stock_value=money(row["stock_value"]),
        min_quantity=row["min_quantity"],
        max_quantity=row["max_quantity"],
        low_stock_threshold=row["low_stock_threshold"],
        reorder_quantity=row["reorder_quantity"],
        bin=row["bin"],
        preferred_supplier=row["preferred_supplier"],
        picks=MappingProxyType(json.loads(row["picks"])),
        reservations=MappingProxyType(dict(reservations)),
        version=row["version"],
    )


def _reservation(row: asyncpg.Record) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        order_ref=row["order_ref"],
        quantity=row["quantity"],
        back_ordered=row["back_ordered"],
        expires_at=row["expires_at"],
        sequence=row["sequence"],
    )


def _po_line(row: asyncpg.Record) -> PoLine:
    return PoLine(
        **{c: row[c] for c in queries.PO_LINE_COLUMNS if c not in ("unit_cost", "received_value")},
        unit_cost=money(row["unit_cost"]),
        received_value=money(row["received_value"]),
    )


def _columns(rows: Iterable[Sequence[object]], width: int) -> list[list[object]]:
    """Rows to one list per column, the shape `unnest($1::t[], ...)` takes."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def message_from_row(
    row: asyncpg.Record, event_id: str, topic: str, key: str, value: str
) -> OutboxMessage:
    """An OutboxMessage from a row of `outbox` or `processed_command` (column names vary)."""
    return OutboxMessage(
        event_id=row[event_id],
        topic=row[topic],
        key=row[key],
        value=row[value],
        headers=tuple(zip(row["header_keys"], row["header_values"], strict=True)),
    )


def header_columns(message: OutboxMessage) -> tuple[list[str], list[bytes | None]]:
    return [k for k, _ in message.headers], [v for _, v in message.headers]


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
        lock_ids = sorted({lock_id(n) for n in names})
        if lock_ids:
            await self._connection.execute(queries.LOCK, lock_ids)

    async def load_state(self, footprint: Footprint) -> StockState:
        conn = self._connection
        skus = [k.sku for k in footprint.positions]
        locations = [k.location for k in footprint.positions]
        reservations: dict[PositionKey, dict[str, Reservation]] = {}
        positions: list[Position] = []
        if footprint.positions:
            for r in await conn.fetch(queries.LOAD_RESERVATIONS, skus, locations):
                key = PositionKey(r["sku"], r["location"])
                reservations.setdefault(key, {})[r["reservation_id"]] = _reservation(r)
            rows = await conn.fetch(queries.LOAD_POSITIONS, skus, locations)
            positions = [
                _position(r, reservations.get(PositionKey(r["sku"], r["location"]), {}))
                for r in rows
            ]
        owners = []
        if footprint.reservations:
            owners = [
                (r["reservation_id"], PositionKey(r["sku"], r["location"]))
                for r in await conn.fetch(queries.RESERVATION_OWNERS, list(footprint.reservations))
            ]
        po_lines = []
        if footprint.po_lines:
            po_lines = [
                _po_line(r)
                for r in await conn.fetch(
                    queries.LOAD_PO_LINES,
                    [k.po_number for k in footprint.po_lines],
                    [k.po_line for k in footprint.po_lines],
                )
            ]
        catalog_locations = (
            [
                Location(**dict(r))
                for r in await conn.fetch(queries.LOAD_LOCATIONS, list(footprint.locations))
            ]
            if footprint.locations
            else []
        )
        items = (
            [Item(**dict(r)) for r in await conn.fetch(queries.LOAD_ITEMS, list(footprint.items))]
            if footprint.items
            else []
        )
        return StockState.of(positions, po_lines, catalog_locations, items, owners)

    async def load_results(self, command_ids: Iterable[UUID]) -> Mapping[UUID, StoredResult]:
        ids = list(command_ids)
        if not ids:
            return {}
        rows = await self._connection.fetch(queries.LOAD_RESULTS, ids)
        return {
            r["command_id"]: StoredResult(
                command_id=r["command_id"],
                result=message_from_row(
                    r, "result_event_id", "result_topic", "result_key", "result_value"
                ),
                fingerprint=r["fingerprint"],
            )
            for r in rows
        }

    async def save(self, changes: StateChanges) -> None:
        conn = self._connection
        if changes.positions:
            await conn.execute(
                queries.SAVE_POSITIONS,
                *_columns(
                    (
                        (
                            p.sku,
                            p.location,
                            p.on_hand,
                            p.reserved,
                            p.picked,
                            p.on_order,
                            p.back_ordered,
                            p.stock_value,
                            p.min_quantity,
                            p.max_quantity,
                            p.low_stock_threshold,
                            p.reorder_quantity,
                            p.bin,
                            p.preferred_supplier,
                            json.dumps(dict(p.picks), separators=(",", ":")),
                            p.version,
                        )
                        for _, p in changes.positions
                    ),
                    len(queries.POSITION_COLUMNS),
                ),
            )
            await self._save_reservations(changes.positions)
        if changes.po_lines:
            await conn.execute(
                queries.SAVE_PO_LINES,
                *_columns(
                    (tuple(getattr(line, c) for c in queries.PO_LINE_COLUMNS)
                     for line in changes.po_lines),
                    len(queries.PO_LINE_COLUMNS),
                ),
            )  # fmt: skip
        if changes.locations:
            await conn.execute(
                queries.SAVE_LOCATIONS,
                *_columns(((x.code, x.name, x.active, x.version) for x in changes.locations), 4),
            )
        if changes.items:
            await conn.execute(
                queries.SAVE_ITEMS,
                *_columns(
                    ((i.sku, i.name, i.base_unit, i.active, i.version) for i in changes.items), 5
                ),
            )
        if changes.ledger:
            await conn.copy_records_to_table(
                "stock_ledger",
                columns=queries.LEDGER_COLUMNS,
                records=[
                    (
                        e.sku,
                        e.location,
                        e.version,
                        e.command_id,
                        e.command_type,
                        e.reason,
                        e.occurred_at,
                        *(getattr(e.deltas, f) for f in QUANTITY_FIELDS),
                        *(getattr(e.after, f) for f in QUANTITY_FIELDS),
                    )
                    for e in changes.ledger
                ],
            )

    async def _save_reservations(
        self, positions: Sequence[tuple[Position | None, Position]]
    ) -> None:
        """Write only the reservations that changed; delete the closed ones."""
        upserts: list[tuple[object, ...]] = []
        closed: list[str] = []
        for original, current in positions:
            before = original.reservations if original else {}
            closed.extend(r for r in before if r not in current.reservations)
            upserts.extend(
                (
                    r.reservation_id,
                    current.sku,
                    current.location,
                    r.order_ref,
                    r.quantity,
                    r.back_ordered,
                    r.expires_at,
                    r.sequence,
                )
                for r in current.reservations.values()
                if before.get(r.reservation_id) != r
            )
        if closed:
            await self._connection.execute(queries.DELETE_RESERVATIONS, closed)
        if upserts:
            await self._connection.execute(
                queries.SAVE_RESERVATIONS,
                *_columns(upserts, len(queries.RESERVATION_COLUMNS)),
            )

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
        return [
            DueReservation(
                reservation_id=r["reservation_id"],
                position=PositionKey(r["sku"], r["location"]),
                expires_at=r["expires_at"],
                sequence=r["sequence"],
            )
            for r in rows
        ]

    async def save_results(self, results: Sequence[StoredResult]) -> None:
        if not results:
            return
        await self._connection.copy_records_to_table(
            "processed_command",
            columns=queries.PROCESSED_COMMAND_COLUMNS,
            records=[
                (
                    r.command_id,
                    r.result.event_id,
                    r.result.topic,
                    r.result.key,
                    r.result.value,
                    *header_columns(r.result),
                    r.fingerprint,
                )
                for r in results
            ],
        )

    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        await self._connection.copy_records_to_table(
            "outbox",
            columns=queries.OUTBOX_COLUMNS,
            records=[(m.event_id, m.topic, m.key, m.value, *header_columns(m)) for m in messages],
        )
        self._wrote_outbox = True


class PostgresUnitOfWorkFactory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool)


async def all_positions(conn: asyncpg.Connection | asyncpg.Pool) -> list[Position]:
    """Every position with its reservations, ordered by key (audit and the tests' checks)."""
    reservations: dict[PositionKey, dict[str, Reservation]] = {}
    for r in await conn.fetch(queries.ALL_RESERVATIONS):
        reservations.setdefault(PositionKey(r["sku"], r["location"]), {})[r["reservation_id"]] = (
            _reservation(r)
        )
    return [
        _position(r, reservations.get(PositionKey(r["sku"], r["location"]), {}))
        for r in await conn.fetch(queries.ALL_POSITIONS)
    ]
