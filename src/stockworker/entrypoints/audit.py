"""Operator views of the database: positions, the ledger check, quantities back in time."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from stockworker.adapters.postgres.ledger import check_ledger, quantities_as_of
from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import PositionKey


async def print_positions(database_url: str, detail: bool = False) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        positions = await all_positions(conn)
    finally:
        await conn.close()
    print(
        f"{'sku':<20} {'location':<12} {'on_hand':>8} {'reserved':>8} {'picked':>8} "
        f"{'on_order':>8} {'backord':>8} {'available':>9} {'value':>14} {'version':>7}"
    )
    for p in positions:
        print(
            f"{p.sku:<20} {p.location:<12} {p.on_hand:>8} {p.reserved:>8} {p.picked:>8} "
            f"{p.on_order:>8} {p.back_ordered:>8} {p.available:>9} {p.stock_value:>14} "
            f"{p.version:>7}"
        )
        if detail:
            for h in sorted(p.holdings.values(), key=lambda h: h.id):
                expiry = f" expires {h.expires_on}" if h.expires_on else ""
                if h.expired:
                    expiry += " (EXPIRED)"
                elif h.warned:
                    expiry += " (reported as expiring)"
                picks = ", ".join(f"{order} {n}" for order, n in sorted(h.picks.items()))
                print(
                    f"    {h.kind} {h.id}: on_hand {h.on_hand}, picked {h.picked}"
                    f"{' (' + picks + ')' if picks else ''}{expiry}"
                )


async def project_ledger(database_url: str) -> int:
    """Recompute every position from the ledger; print differences. Exit code 1 if any."""
    conn = await asyncpg.connect(database_url)
    try:
        report = await check_ledger(conn)
    finally:
        await conn.close()
    for key, problems in sorted(report.differences.items()):
        for problem in problems:
            print(f"{key.sku}@{key.location}: {problem}")
    print(
        f"{report.positions_checked} positions, {report.entries} ledger entries, "
        f"{len(report.differences)} with differences"
    )
    return 1 if report.differences else 0


async def print_as_of(database_url: str, sku: str, location: str, moment: datetime) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        q, held = await quantities_as_of(conn, PositionKey(sku, location), moment)
    finally:
        await conn.close()
    print(
        f"{sku}@{location} as of {moment.isoformat()}: version {q.version}, on_hand {q.on_hand}, "
        f"reserved {q.reserved}, picked {q.picked}, on_order {q.on_order}, "
        f"back_ordered {q.back_ordered}, available "
        f"{q.on_hand - q.reserved - q.picked - q.expired}, expired {q.expired}, "
        f"stock_value {q.stock_value}"
    )
    for hid, (on_hand, picked) in sorted(held.items()):
        print(f"    {hid}: on_hand {on_hand}, picked {picked}")
