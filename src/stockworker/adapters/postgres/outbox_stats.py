"""The outbox at a glance, for metrics and readiness: one statement, bounded in cost."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from stockworker.adapters.postgres import queries

# A larger backlog shows as this many: counting millions of rows every second would load
# the database when it is busiest (the age still tells how far behind the relay is).
BACKLOG_COUNTED_UP_TO = 100_000


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """`backlog`: rows still to publish (not parked), counted up to BACKLOG_COUNTED_UP_TO;
    `oldest_age_seconds`: how long the next of them has waited (0 when there is none);
    `parked`: rows set aside."""

    backlog: int
    oldest_age_seconds: float
    parked: int


async def outbox_stats(pool_or_connection: asyncpg.Pool | asyncpg.Connection) -> OutboxStats:
    """The outbox's backlog, its oldest row's age and its parked rows, read now."""
    row = await pool_or_connection.fetchrow(queries.OUTBOX_STATS, BACKLOG_COUNTED_UP_TO)
    assert row is not None  # an aggregate always returns one row
    return OutboxStats(
        backlog=int(row["backlog"]),
        oldest_age_seconds=max(0.0, float(row["oldest_age_seconds"])),
        parked=int(row["parked"]),
    )
