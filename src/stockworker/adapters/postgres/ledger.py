"""Reading the stock ledger: recompute positions from it, and look back in time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.outbox_rows import stored_result_from_row
from stockworker.adapters.postgres.tables import (
    HOLDINGS,
    ledger_entry_from_row,
    quantities_from_row,
)
from stockworker.domain.ledger import (
    Held,
    LedgerEntry,
    differences,
    holding_differences,
    holdings_as_of,
    project,
)
from stockworker.domain.ledger import LedgerQuantities as Quantities
from stockworker.domain.position import PositionKey
from stockworker.service.ports import StoredResult
from stockworker.service.republish import EntryKey, Selection


@dataclass(frozen=True, slots=True)
class LedgerReport:
    positions_checked: int
    entries: int
    differences: dict[PositionKey, list[str]]


# A connection of its own or one from a pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def _entries_by_position(
    conn: Connection,
) -> AsyncIterator[tuple[PositionKey, list[LedgerEntry]]]:
    """The whole ledger, one position at a time, read with a cursor (bounded memory).

    Cursors live in a transaction: the caller holds one.
    """
    key: PositionKey | None = None
    entries: list[LedgerEntry] = []
    async for row in conn.cursor(queries.ALL_LEDGER, prefetch=5000):
        entry = ledger_entry_from_row(row)
        entry_key = PositionKey(entry.sku, entry.location)
        if entry_key != key and key is not None:
            yield key, entries
            entries = []
        key = entry_key
        entries.append(entry)
    if key is not None:
        yield key, entries


async def check_ledger(conn: Connection) -> LedgerReport:
    """Recompute every position from the ledger and compare with the stored positions.

    Runs in one repeatable-read snapshot, so a running worker cannot cause false alarms.
    """
    stored: dict[PositionKey, Quantities] = {}
    stored_holdings: dict[PositionKey, Held] = {}
    found: dict[PositionKey, list[str]] = {}
    count = 0
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        for row in await conn.fetch(queries.POSITION_QUANTITIES):
            key = PositionKey(row["sku"], row["location"])
            stored[key] = quantities_from_row(row, version=row["version"])
        for row in await conn.fetch(queries.ALL_HOLDINGS):
            holding = HOLDINGS.from_row(row)
            held = stored_holdings.setdefault(PositionKey(row["sku"], row["location"]), {})
            held[holding.id] = (holding.on_hand, holding.picked)
        seen: set[PositionKey] = set()
        async for key, entries in _entries_by_position(conn):
            seen.add(key)
            count += len(entries)
            projection = project(entries)
            problems = [
                *projection.problems,
                *differences(projection.quantities, stored.get(key)),
                *holding_differences(projection.holdings, stored_holdings.get(key, {})),
            ]
            if problems:
                found[key] = problems
        for key in stored.keys() - seen:
            found[key] = ["position has no ledger entries"]
    checked = len(stored.keys() | seen)
    return LedgerReport(positions_checked=checked, entries=count, differences=found)


async def quantities_as_of(
    conn: asyncpg.Connection, key: PositionKey, moment: datetime
) -> tuple[Quantities, Held]:
    """A position's quantities and holdings (serials or lots) as of `moment`."""
    rows = await conn.fetch(queries.POSITION_LEDGER, key.sku, key.location)
    return holdings_as_of((ledger_entry_from_row(r) for r in rows), moment)


class PostgresRepublishSource:
    """What `events republish` rebuilds events from: the ledger and the inbox's results,
    each read with a cursor in one repeatable-read snapshot, `chunk` rows at a time."""

    def __init__(self, conn: asyncpg.Connection, chunk: int = 1000) -> None:
        self._conn = conn
        self._chunk = chunk

    async def ledger(self, selection: Selection) -> AsyncIterator[list[LedgerEntry]]:
        args = (
            selection.since,
            selection.until,
            list(selection.skus) or None,
            selection.location,
        )
        async with self._conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await self._conn.cursor(queries.REPUBLISH_LEDGER, *args)
            while rows := await cursor.fetch(self._chunk):
                yield [ledger_entry_from_row(r) for r in rows]

    async def entries(self, keys: Sequence[EntryKey]) -> list[LedgerEntry]:
        if not keys:
            return []
        skus, locations, versions = (list(column) for column in zip(*keys, strict=True))
        rows = await self._conn.fetch(queries.LEDGER_ENTRIES_AT, skus, locations, versions)
        return [ledger_entry_from_row(r) for r in rows]

    async def position_keys(
        self, selection: Selection, after: PositionKey | None, limit: int
    ) -> list[PositionKey]:
        rows = await self._conn.fetch(
            queries.SNAPSHOT_POSITION_KEYS,
            list(selection.skus) or None,
            selection.location,
            after.sku if after else None,
            after.location if after else None,
            limit,
        )
        return [PositionKey(r["sku"], r["location"]) for r in rows]

    async def results(self) -> AsyncIterator[list[StoredResult]]:
        async with self._conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await self._conn.cursor(queries.REPUBLISH_RESULTS)
            while rows := await cursor.fetch(self._chunk):
                yield [stored_result_from_row(r) for r in rows]
