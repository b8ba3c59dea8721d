"""The service's UnitOfWork on PostgreSQL: one transaction on one pooled connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Self
from uuid import UUID

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.domain.position import Position, PositionKey
from stockworker.service.ports import OutboxMessage, StoredResult

OUTBOX_CHANNEL = "stockworker_outbox"


def position_lock_id(key: PositionKey) -> int:
    """A stable signed 64-bit advisory-lock id for a position (the same in every process)."""
    digest = hashlib.blake2b(f"{key.sku}\x00{key.location}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _position(row: asyncpg.Record) -> Position:
    picks = json.loads(row["picks"])
    return Position(
        sku=row["sku"],
        location=row["location"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        picked=row["picked"],
        on_order=row["on_order"],
        min_quantity=row["min_quantity"],
        max_quantity=row["max_quantity"],
        low_stock_threshold=row["low_stock_threshold"],
        reorder_quantity=row["reorder_quantity"],
        bin=row["bin"],
        picks=MappingProxyType(picks),
        version=row["version"],
    )


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
        try:
            if exc_type is None:
                if self._wrote_outbox:
                    # Delivered at commit: the relay wakes up without polling.
                    await self._conn.execute(queries.NOTIFY_OUTBOX, OUTBOX_CHANNEL)
                await self._tx.commit()
            else:
                await self._tx.rollback()
        finally:
            await self._pool.release(self._conn)
            self._conn = self._tx = None

    async def lock_positions(self, keys: Iterable[PositionKey]) -> None:
        lock_ids = sorted({position_lock_id(k) for k in keys})
        if lock_ids:
            await self._connection.execute(queries.LOCK_POSITIONS, lock_ids)

    async def load_positions(self, keys: Iterable[PositionKey]) -> Mapping[PositionKey, Position]:
        keys = list(keys)
        if not keys:
            return {}
        rows = await self._connection.fetch(
            queries.LOAD_POSITIONS, [k.sku for k in keys], [k.location for k in keys]
        )
        positions = (_position(r) for r in rows)
        return {p.key: p for p in positions}

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
            )
            for r in rows
        }

    async def save_positions(self, positions: Sequence[Position]) -> None:
        if not positions:
            return
        columns: list[list[object]] = [[] for _ in queries.POSITION_COLUMNS]
        for p in positions:
            values = (
                p.sku, p.location, p.on_hand, p.reserved, p.picked, p.on_order,
                p.min_quantity, p.max_quantity, p.low_stock_threshold, p.reorder_quantity,
                p.bin, json.dumps(dict(p.picks), separators=(",", ":")), p.version,
            )  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await self._connection.execute(queries.SAVE_POSITIONS, *columns)

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
    """Every position, ordered by key (operators' audit and the tests' final check)."""
    return [_position(r) for r in await conn.fetch(queries.ALL_POSITIONS)]
