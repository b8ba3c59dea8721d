"""Reading the stock ledger: recompute positions from it, and look back in time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from stockworker.adapters.postgres import queries
from stockworker.domain.ledger import (
    QUANTITY_FIELDS,
    LedgerEntry,
    as_of,
    differences,
    project,
)
from stockworker.domain.ledger import LedgerQuantities as Quantities
from stockworker.domain.position import PositionKey
from stockworker.domain.valuation import money


def _entry(row: asyncpg.Record) -> LedgerEntry:
    def quantities(prefix: str, version: int) -> Quantities:
        values = {f: row[prefix + f] for f in QUANTITY_FIELDS}
        values["stock_value"] = money(values["stock_value"])
        return Quantities(**values, version=version)

    return LedgerEntry(
        sku=row["sku"],
        location=row["location"],
        version=row["version"],
        command_id=row["command_id"],
        command_type=row["command_type"],
        reason=row["reason"],
        occurred_at=row["occurred_at"],
        deltas=quantities("delta_", 0),
        after=quantities("", row["version"]),
    )


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
        entry = _entry(row)
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
            stored[PositionKey(row["sku"], row["location"])] = Quantities(
                **{f: row[f] for f in QUANTITY_FIELDS if f != "stock_value"},
                stock_value=money(row["stock_value"]),
                version=row["version"],
            )
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
    return LedgerReport(positions_checked=len(stored | dict.fromkeys(seen)), entries=count,
                        differences=found)  # fmt: skip


async def quantities_as_of(
    conn: asyncpg.Connection, key: PositionKey, moment: datetime
) -> Quantities:
    rows = await conn.fetch(queries.POSITION_LEDGER, key.sku, key.location)
    return as_of((_entry(r) for r in rows), moment)
