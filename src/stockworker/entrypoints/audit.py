"""Operator views of the database."""

from __future__ import annotations

import asyncpg

from stockworker.adapters.postgres.unit_of_work import all_positions


async def print_positions(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        positions = await all_positions(conn)
    finally:
        await conn.close()
    print(
        f"{'sku':<20} {'location':<12} {'on_hand':>8} {'reserved':>8} {'picked':>8} "
        f"{'on_order':>8} {'available':>9} {'version':>7}"
    )
    for p in positions:
        print(
            f"{p.sku:<20} {p.location:<12} {p.on_hand:>8} {p.reserved:>8} {p.picked:>8} "
            f"{p.on_order:>8} {p.available:>9} {p.version:>7}"
        )
