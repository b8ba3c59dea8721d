"""Which database errors are worth retrying."""

from __future__ import annotations

import asyncio

import asyncpg

INBOX_PRIMARY_KEY = "processed_command_pkey"

_TRANSIENT_SQLSTATE_CLASSES = (
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources (too many connections, out of memory, disk full)
    "57",  # operator intervention: admin shutdown, cannot connect now
    "58",  # system error (I/O)
)


def is_transient(exc: BaseException) -> bool:
    """True for failures that may pass by themselves: retry without dead-lettering."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    if (
        isinstance(exc, asyncpg.exceptions.UniqueViolationError)
        and exc.constraint_name == INBOX_PRIMARY_KEY
    ):
        # Two workers recorded the same unlockable (invalid) command at once; a retry
        # finds the other's inbox entry and treats the command as a duplicate. Any other
        # unique violation is a bug, and retrying it would only spin.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False
