"""Permanent needs evidence that the data is the problem; everything else is retried."""

from __future__ import annotations

import decimal

import asyncpg
import pytest
from asyncpg.exceptions._base import DataError as DriverDataError

from stockworker.adapters.postgres.errors import (
    DatabaseConnectionLost,
    describe_failure,
    is_configuration_error,
    is_transient,
)


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
        asyncpg.exceptions.OutOfMemoryError("out of shared memory"),
        # What the rollback raises on a terminated connection: it must not look permanent.
        asyncpg.InterfaceError("cannot call Transaction.rollback(): the connection is closed"),
        DatabaseConnectionLost("CheckViolationError, then the rollback failed"),
        # Not the record's fault: retried until an operator fixes grants or migrations
        # (start-up refuses a database without them), never dead-lettered.
        asyncpg.exceptions.InsufficientPrivilegeError("permission denied"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        # No evidence either way: retried rather than dead-lettering a valid command.
        RuntimeError("something nobody expected"),
        # Our own code raising is a bug: fixed and redeployed, nothing dead-lettered.
        decimal.InvalidOperation(),
        ValueError("a bug"),
        KeyError("a bug"),
        TypeError("a bug"),
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
        asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow"),
        DriverDataError("invalid input for query argument $1"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent(error: BaseException) -> None:
    assert not is_transient(error)


def test_the_inbox_key_race_alone_among_unique_violations_is_transient() -> None:
    race = asyncpg.exceptions.UniqueViolationError("duplicate key")
    race.constraint_name = "processed_command_pkey"
    other = asyncpg.exceptions.UniqueViolationError("duplicate key")
    other.constraint_name = "stock_reservation_pkey"
    assert is_transient(race)
    assert not is_transient(other)


@pytest.mark.parametrize(
    ("error", "configuration"),
    [
        (FileNotFoundError(2, "No such file", "/etc/ca.pem"), True),
        (asyncpg.exceptions.InvalidPasswordError("password authentication failed"), True),
        (asyncpg.exceptions.InvalidCatalogNameError("database does not exist"), True),
        (ConnectionRefusedError("database down"), False),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), False),
    ],
    ids=lambda e: type(e).__name__,
)
def test_what_no_retry_cures_at_start_up(error: BaseException, configuration: bool) -> None:
    assert is_configuration_error(error) is configuration


def test_a_failure_is_described_without_the_row_it_quotes() -> None:
    error = asyncpg.exceptions.CheckViolationError(
        'new row for relation "stock_position" violates check constraint "x"'
    )
    error.detail = "Failing row contains (SKU-1, WH1, SECRET-ORDER-REF)."
    error.constraint_name = "on_hand_covers_reserved_and_picked"
    error.table_name = "stock_position"
    described = describe_failure(error)
    assert "SECRET" not in described and "Failing row" not in described
    assert "23514" in described
    assert "on_hand_covers_reserved_and_picked" in described
    assert "stock_position" in described


def test_our_own_exceptions_are_described_by_kind_and_place_not_message() -> None:
    try:
        {"a": 1}["SECRET-KEY"]
    except KeyError as exc:
        described = describe_failure(exc)
    assert "SECRET" not in described
    assert described.startswith("KeyError in ")
    assert "test_error_classification.py" in described
