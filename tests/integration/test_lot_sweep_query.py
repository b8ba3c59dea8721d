"""The lot sweep's query: which lots it returns, and that it reads only lots inside the
warning window (not every dated lot in stock, on every sweep)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import asyncpg

from stockworker.adapters.postgres import queries

TODAY = date(2026, 11, 30)
WINDOW_DAYS = 30
FAR_LOTS = 1_500  # dated well beyond the window: never due yet


async def _lots(pool: asyncpg.Pool) -> None:
    """One lot per position: an expired-by-date lot, a warned and an unwarned lot inside
    the window, an undated lot, and FAR_LOTS lots dated past the window."""
    rows = [
        ("PAST", TODAY - timedelta(days=1), True),
        ("WARNED", TODAY + timedelta(days=5), True),
        ("NEAR", TODAY + timedelta(days=WINDOW_DAYS), False),
        ("UNDATED", None, False),
        *(
            (f"FAR{i:05}", TODAY + timedelta(days=WINDOW_DAYS + 1 + i % 900), False)
            for i in range(FAR_LOTS)
        ),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO stock_position (sku, location, on_hand, version) VALUES ($1, 'L', 5, 1)",
            [(sku,) for sku, _, _ in rows],
        )
        await conn.executemany(
            "INSERT INTO stock_holding (sku, location, kind, id, on_hand, expires_on, sequence,"
            " warned) VALUES ($1, 'L', 'lot', 'LOT', 5, $2, 1, $3)",
            rows,
        )
        await conn.execute("ANALYZE stock_holding")


def _arguments(limit: int = 100) -> tuple[Any, ...]:
    return (TODAY, TODAY + timedelta(days=WINDOW_DAYS), limit, None, None, None, None)


async def test_the_sweep_gets_lots_past_their_date_and_unreported_ones_in_the_window(
    pool: asyncpg.Pool,
) -> None:
    await _lots(pool)
    rows = await pool.fetch(queries.DUE_LOTS, *_arguments())
    assert [(r["sku"], r["stage"]) for r in rows] == [("PAST", "expired"), ("NEAR", "expiring")]


async def test_the_sweep_reads_only_the_lots_inside_the_window(pool: asyncpg.Pool) -> None:
    """Before, the query's bound was inside an OR: its index scan went on through every
    dated lot in stock, 28 ms for 100,000 lots on each sweep with nothing due."""
    await _lots(pool)
    async with pool.acquire() as conn:
        # The plan PostgreSQL chose for 100,000 lots (an index scan in date order, to
        # stop at the LIMIT), which a table this small does not get by itself.
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        [plan] = json.loads(
            await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {queries.DUE_LOTS}", *_arguments())
        )
        await conn.execute("RESET ALL")
    read = _rows_read(plan["Plan"])
    assert read < 10, f"{read} lots read to find 2: {json.dumps(plan['Plan'], indent=1)}"


def _rows_read(node: dict[str, Any]) -> int:
    """Rows a plan's scans produced or removed by their filters, over all its nodes."""
    own = 0
    if "Scan" in node["Node Type"]:
        own = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
    return own + sum(_rows_read(child) for child in node.get("Plans", ()))
