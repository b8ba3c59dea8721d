"""The outbox at a glance, for metrics and readiness: one cheap statement."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from stockworker.adapters.postgres import queries


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """`backlog`: rows still to publish (not parked); `oldest_age_seconds`: how long the
    oldest of them has waited (0 when there is none); `parked`: rows set aside."""

    backlog: int
    oldest_age_seconds: float
    parked: int


async def outbox_stats(pool_or_connection: asyncpg.Pool | asyncpg.Connection) -> OutboxStats:
    """The outbox's backlog, its oldest row's age and its parked rows, read now."""
    row = await pool_or_connection.fetchrow(queries.OUTBOX_STATS)
    assert row is not None  # an aggregate always returns one row
    return OutboxStats(
        backlog=int(row["backlog"]),
        oldest_age_seconds=max(0.0, float(row["oldest_age_seconds"])),
        parked=int(row["parked"]),
    )
