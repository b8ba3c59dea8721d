"""Versioned SQL migrations: src/stockworker/sql/migrations/NNNN_name.sql, applied in order.

Run by `stockworker migrate` (as a role that may change the schema); the worker runs no DDL.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import asyncpg

from stockworker.adapters.postgres import queries


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


def available_migrations() -> list[Migration]:
    folder = resources.files("stockworker") / "sql" / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def missing_migrations(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """Versions this code needs that the database has not applied (the worker's check)."""
    done: set[str] = set()
    if await conn.fetchval(queries.MIGRATIONS_TABLE_EXISTS):
        done = {r["version"] for r in await conn.fetch(queries.APPLIED_MIGRATIONS)}
    return [m.version for m in available_migrations() if m.version not in done]


async def lock_table_slots(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many locks all sessions together can hold (max_locks_per_transaction x sessions)."""
    return int(await conn.fetchval(queries.LOCK_TABLE_SLOTS))


async def migrate(dsn: str, grant_to: str | None = None) -> list[str]:
    """Apply every migration not applied yet; return the versions applied now.

    With `grant_to`, that role (the worker's) may then read and write every table (the
    ledger: read and insert only) and use every sequence, and nothing more: it cannot
    create, alter or drop anything. Running it again on a migrated database applies the
    current grants (queries.WORKER_GRANTS), revoking what they no longer give.
    """
    conn = await asyncpg.connect(dsn)
    try:
        applied_now = []
        async with conn.transaction():
            await conn.execute(queries.MIGRATION_LOCK)
            await conn.execute(queries.CREATE_MIGRATIONS_TABLE)
            done = {r["version"] for r in await conn.fetch(queries.APPLIED_MIGRATIONS)}
            for migration in available_migrations():
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(queries.RECORD_MIGRATION, migration.version)
                applied_now.append(migration.version)
            if grant_to is not None:
                for statement in await conn.fetchval(queries.WORKER_GRANTS, grant_to):
                    await conn.execute(statement)
        return applied_now
    finally:
        await conn.close()
