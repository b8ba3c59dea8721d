"""Operator commands for outbox rows the relay parked (`stockworker outbox ...`)."""

from __future__ import annotations

import asyncpg

from stockworker.adapters.postgres.outbox import OutboxStore


def _shown_key(key: bytes | None) -> str:
    if key is None:
        return "(null)"
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 40 else text[:37] + "..."


async def print_parked(database_url: str) -> int:
    """List parked rows, oldest first; exit code 1 when there is any."""
    conn = await asyncpg.connect(database_url)
    try:
        parked = await OutboxStore(conn).parked()
    finally:
        await conn.close()
    print(f"{'id':>10} {'event_id':<36} {'topic':<32} {'key':<40} {'bytes':>9} parked_at / reason")
    for p in parked:
        print(
            f"{p.id:>10} {p.event_id!s:<36} {p.topic:<32} {_shown_key(p.key):<40} {p.size:>9} "
            f"{p.parked_at.isoformat()}\n{'':>11}{p.reason}"
        )
    print(f"{len(parked)} parked")
    return 1 if parked else 0


async def retry_parked(database_url: str, ids: list[int]) -> int:
    """Give parked rows back to the relay; exit code 1 if one of them was not parked."""
    conn = await asyncpg.connect(database_url)
    try:
        store = OutboxStore(conn)
        missing = [i for i in ids if not await store.requeue(i)]
    finally:
        await conn.close()
    for i in ids:
        print(
            f"{i}: " + ("not parked" if i in missing else "re-queued; the relay publishes it next")
        )
    return 1 if missing else 0
