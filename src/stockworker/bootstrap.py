"""The one composition root: builds the worker's parts from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from stockworker.adapters.kafka.command_consumer import CommandConsumer
from stockworker.adapters.kafka.relay import OutboxRelay
from stockworker.adapters.postgres.errors import (
    describe_failure,
    is_configuration_error,
    is_lock_table_full,
    is_transient,
)
from stockworker.adapters.postgres.migrations import lock_table_slots, missing_migrations
from stockworker.adapters.postgres.pool import create_pool
from stockworker.adapters.postgres.retention import RetentionSweeper
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.config import ConfigurationError, Settings
from stockworker.domain.decide import Policy
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.expiry import ReservationExpiry
from stockworker.service.limits import record_limit
from stockworker.service.loops import Backoff
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


def backoff(settings: Settings) -> Backoff:
    return Backoff(settings.retry_initial_seconds, settings.retry_max_seconds)


def build_relay(settings: Settings) -> OutboxRelay:
    return OutboxRelay(
        settings.database_url,
        settings.kafka(),
        batch_size=settings.relay_batch_size,
        retry_max_seconds=settings.retry_max_seconds,
        max_record_bytes=record_limit(settings.max_message_bytes),
    )


@dataclass
class Runtime:
    """What a running worker holds between start-up and shutdown."""

    pool: asyncpg.Pool
    consumer: CommandConsumer
    relay: OutboxRelay | None
    expiry: ReservationExpiry
    retention: RetentionSweeper
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    def start_background(self) -> None:
        """The outbox relay (unless it runs as its own process) and reservation expiry."""
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self.expiry.run(), name="reservation-expiry"))
        self._tasks.append(asyncio.create_task(self.retention.run(), name="retention"))

    async def close(self) -> None:
        """Stop expiry, then the relay (it flushes what is committed); close the pool."""
        self.expiry.stop()
        self.retention.stop()
        if self.relay is not None:
            self.relay.stop()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await task
        await self.pool.close()


async def open_database(settings: Settings) -> asyncpg.Pool:
    """The worker's pool, once the database is reachable and fit for this worker.

    What no retry can cure ends start-up with a ConfigurationError naming the setting:
    a DSN that cannot connect (files, role, password, database), migrations not
    applied, a lock budget the server's lock table cannot hold.
    """
    try:
        pool = await create_pool(settings.database_url, settings.db_pool_size, backoff(settings))
    except Exception as exc:
        if is_configuration_error(exc):
            raise ConfigurationError("DATABASE_URL", describe_failure(exc)) from None
        raise
    try:
        missing = await missing_migrations(pool)
        if missing:
            raise ConfigurationError(
                "DATABASE_URL",
                f"the database lacks migrations {', '.join(missing)}: run `stockworker migrate`",
            )
        slots = await lock_table_slots(pool)
        # The batch in hand and the expiry sweep may hold their budgets at the same time.
        if 2 * settings.max_locks_per_transaction > slots:
            raise ConfigurationError(
                "STOCKWORKER_MAX_LOCKS_PER_TRANSACTION",
                f"{settings.max_locks_per_transaction} locks, twice over, do not fit the "
                f"{slots} slots of this PostgreSQL's lock table (max_locks_per_transaction x "
                "max_connections): lower it, or raise max_locks_per_transaction",
            )
    except BaseException:
        await pool.close()
        raise
    return pool


async def build_runtime(settings: Settings) -> Runtime:
    pool = await open_database(settings)
    unit_of_work = PostgresUnitOfWorkFactory(pool)
    service = CommandBatchService(
        unit_of_work,
        Topics(settings.topic_prefix),
        is_transient=is_transient,
        max_message_bytes=settings.max_message_bytes,
        policy=Policy(
            over_receipt_tolerance_percent=Decimal(str(settings.over_receipt_tolerance_percent))
        ),
        describe_failure=describe_failure,
        max_locks_per_transaction=settings.max_locks_per_transaction,
        is_lock_table_full=is_lock_table_full,
    )
    expiry = ReservationExpiry(
        unit_of_work,
        service,
        clock=lambda: datetime.now(UTC),
        is_transient=is_transient,
        interval_seconds=settings.expiry_interval_seconds,
        # An expiry locks a position and a reservation.
        batch_size=min(500, settings.max_locks_per_transaction // 2),
        describe_failure=describe_failure,
    )
    consumer = CommandConsumer(
        service,
        is_transient=is_transient,
        backoff=backoff(settings),
        describe_failure=describe_failure,
    )
    relay = build_relay(settings) if settings.run_relay else None
    retention = RetentionSweeper(
        pool,
        inbox_seconds=settings.inbox_retention_hours * 3600,
        outbox_seconds=settings.outbox_retention_hours * 3600,
        interval_seconds=settings.retention_interval_seconds,
    )
    return Runtime(pool, consumer, relay, expiry, retention)
