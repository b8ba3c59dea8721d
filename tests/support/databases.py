"""Creating and dropping whole databases, for tests and bench/bench.py (the worker and the
CLI never do)."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(server_url: str, name: str) -> str:
    """`server_url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _checked(name: str) -> str:
    # Identifiers cannot be bind parameters: accept only plain lower-case names.
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


async def create_database(server_url: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        clause = f" TEMPLATE {_checked(template)}" if template else ""
        await conn.execute(f"CREATE DATABASE {_checked(name)}{clause}")
    finally:
        await conn.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str, attempts: int = 20) -> None:
    """Drop, retrying while other sessions (a worker shutting down, autovacuum) still use it."""
    conn = await asyncpg.connect(server_url)
    try:
        for attempt in range(attempts):
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)")
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await conn.close()
