"""Transient failures are retried with backoff; permanent ones never are."""

from __future__ import annotations

import asyncpg
import pytest

from stockworker.adapters.postgres.errors import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("database down"),
        OSError("network unreachable"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection closed"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CheckViolationError("violates check constraint"),
        asyncpg.exceptions.ForeignKeyViolationError("violates foreign key"),
        asyncpg.exceptions.UntranslatableCharacterError("NUL byte"),
        asyncpg.exceptions.InsufficientPrivilegeError("permission denied"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        ValueError("a bug"),
        KeyError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent(error: BaseException) -> None:
    assert not is_transient(error)
