"""Reading the stock ledger: recompute positions from it, and look back in time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.tables import ledger_entry_from_row, quantities_from_row
from stockworker.domain.ledger import LedgerEntry, as_of, differences, project
from stockworker.domain.ledger import LedgerQuantities as Quantities
from stockworker.domain.position import PositionKey


@dataclass(frozen=True, slots=True)
class LedgerReport:
    positions_checked: int
    entries: int
    differences: dict[PositionKey, list[str]]


async def _entries_by_position(
    conn: asyncpg.Connection,
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


async def check_ledger(conn: asyncpg.Connection) -> LedgerReport:
    """Recompute every position from the ledger and compare with the stored positions.

    Runs in one repeatable-read snapshot, so a running worker cannot cause false alarms.
    """
    stored: dict[PositionKey, Quantities] = {}
    found: dict[PositionKey, list[str]] = {}
    count = 0
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        for row in await conn.fetch(queries.POSITION_QUANTITIES):
            key = PositionKey(row["sku"], row["location"])
            stored[key] = quantities_from_row(row, version=row["version"])
        seen: set[PositionKey] = set()
        async for key, entries in _entries_by_position(conn):
            seen.add(key)
            count += len(entries)
            projection = project(entries)
            problems = [*projection.problems, *differences(projection.quantities, stored.get(key))]
            if problems:
                found[key] = problems
        for key in stored.keys() - seen:
            found[key] = ["position has no ledger entries"]
    checked = len(stored.keys() | seen)
    return LedgerReport(positions_checked=checked, entries=count, differences=found)


async def quantities_as_of(
    conn: asyncpg.Connection, key: PositionKey, moment: datetime
) -> Quantities:
    rows = await conn.fetch(queries.POSITION_LEDGER, key.sku, key.location)
    return as_of((ledger_entry_from_row(r) for r in rows), moment)
