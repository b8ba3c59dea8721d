"""Which database failures are worth retrying, and how to name one without its data.

A failure is *permanent* only on positive evidence that the same work would fail the
same way again because of the data it carries: PostgreSQL refused the data itself (a
data exception or a constraint), or the driver could not encode a value for its
column. Everything else is retried with backoff: a lost or refused connection, a
conflict, missing resources or privileges, and an exception of our own code, which is
a bug to fix (the domain answers bad data with rejections, not exceptions) and must not
turn valid commands into dead letters.
"""

from __future__ import annotations

import ssl

import asyncpg

INBOX_PRIMARY_KEY = "processed_command_pkey"

# Data exception, integrity constraint violation: the refused rows are the problem.
_PERMANENT_SQLSTATE_CLASSES = ("22", "23")


class DatabaseConnectionLost(ConnectionError):
    """The connection failed while a unit of work ran: whatever it was doing may be retried.

    Raised in place of the original error (kept as its cause) when the connection is
    closed afterwards or cannot even roll back, so that the error the cleanup raised
    can never make a connection failure look permanent.
    """


def is_permanent(exc: BaseException) -> bool:
    """True only when retrying `exc` would fail the same way, because of the data."""
    if isinstance(exc, DatabaseConnectionLost):
        return False
    if isinstance(exc, asyncpg.PostgresError):
        if (
            isinstance(exc, asyncpg.exceptions.UniqueViolationError)
            and exc.constraint_name == INBOX_PRIMARY_KEY
        ):
            # Two workers recorded the same unlockable command at once; a retry finds
            # the other's inbox entry and treats the command as a duplicate.
            return False
        return str(exc.sqlstate or "")[:2] in _PERMANENT_SQLSTATE_CLASSES
    # The driver's own DataError (a ValueError) is a value it cannot encode for its
    # column; every other client-side error is about the connection.
    return isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)


def is_lock_table_full(exc: BaseException) -> bool:
    """PostgreSQL's shared lock table has no room ("out of shared memory", 53200)."""
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == "53200"


def is_transient(exc: BaseException) -> bool:
    """True for failures to retry without dead-lettering (see `is_permanent`)."""
    return not is_permanent(exc)


def is_configuration_error(exc: BaseException) -> bool:
    """Failures to connect that no retry will cure: the settings must change."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ssl.SSLError)):
        return True
    return isinstance(
        exc,
        (
            asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # 28000: no such role
            asyncpg.exceptions.InvalidPasswordError,  # 28P01
            asyncpg.exceptions.InvalidCatalogNameError,  # 3D000: no such database
            asyncpg.exceptions.ClientConfigurationError,  # DSN the driver cannot use
        ),
    )


def describe_failure(exc: BaseException) -> str:
    """Names a failure for logs and dead letters without the data it may quote.

    PostgreSQL's messages and details can hold row contents ("Failing row contains
    (...)"), and our own exceptions can hold field values: only the kind of failure,
    its SQLSTATE and the schema objects involved are kept, and where the code raised.
    """
    name = type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError):
        parts = [f"{name} (SQLSTATE {exc.sqlstate})"]
        for label, attribute in (
            ("constraint", "constraint_name"),
            ("table", "table_name"),
            ("column", "column_name"),
            ("type", "data_type_name"),
        ):
            value = getattr(exc, attribute, None)
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts)
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return name
    code = frame.tb_frame.f_code
    return f"{name} in {code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno})"
