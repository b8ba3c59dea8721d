"""The one composition root: builds the worker's parts from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.registry import Collector

from stockworker.adapters.kafka.command_consumer import CommandConsumer
from stockworker.adapters.kafka.publisher import KafkaPublisher, is_unpublishable
from stockworker.adapters.metrics import exposition
from stockworker.adapters.metrics.collectors import (
    ConsumerLagCollector,
    MetricsRefresher,
    OutboxCollector,
    PoolCollector,
)
from stockworker.adapters.metrics.multiprocess import process_exited
from stockworker.adapters.metrics.observer import PrometheusObserver
from stockworker.adapters.postgres.errors import (
    describe_failure,
    is_configuration_error,
    is_lock_table_full,
    is_transient,
)
from stockworker.adapters.postgres.migrations import lock_table_slots, missing_migrations
from stockworker.adapters.postgres.outbox import PostgresOutboxSession
from stockworker.adapters.postgres.pool import create_pool
from stockworker.adapters.postgres.retention import RetentionSweeper
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.adapters.relay_process import RelayProcess
from stockworker.adapters.tracing import CommandTracing, tracer_provider
from stockworker.config import ConfigurationError, Settings
from stockworker.config.kafka import KafkaConnection
from stockworker.domain.decide import Policy
from stockworker.domain.decoding import DEFAULT_MAX_MESSAGE_BYTES
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.expiry import ReservationExpiry
from stockworker.service.limits import record_limit
from stockworker.service.loops import Backoff
from stockworker.service.lot_expiry import LotExpiry
from stockworker.service.observation import Observer
from stockworker.service.ports import UnitOfWorkFactory
from stockworker.service.relay import OutboxRelay
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


def backoff(settings: Settings) -> Backoff:
    return Backoff(settings.retry_initial_seconds, settings.retry_max_seconds)


class PostgresKafkaRelay(OutboxRelay):
    """The outbox relay reading PostgreSQL's outbox and publishing to Kafka."""

    def __init__(
        self,
        database_url: str,
        kafka: KafkaConnection | str,
        batch_size: int = 2000,
        idle_poll_seconds: float = 1.0,
        retry_max_seconds: float = 10.0,
        max_record_bytes: int = record_limit(DEFAULT_MAX_MESSAGE_BYTES),
        backoff: Backoff | None = None,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(
            open_session=lambda: PostgresOutboxSession.open(database_url),
            new_publisher=lambda: KafkaPublisher(kafka, max_record_bytes),
            is_unpublishable=is_unpublishable,
            batch_size=batch_size,
            idle_poll_seconds=idle_poll_seconds,
            backoff=backoff or Backoff(min(0.1, retry_max_seconds), retry_max_seconds),
            describe_failure=describe_failure,
            observer=observer or PrometheusObserver(),
        )


def build_relay(settings: Settings, observer: Observer | None = None) -> PostgresKafkaRelay:
    """The relay, in the worker (STOCKWORKER_RELAY_INLINE) or as `stockworker relay`: its
    metrics go to this process's instruments (in the worker's child process, to the
    multiprocess directory the worker reads)."""
    return PostgresKafkaRelay(
        settings.database_url,
        settings.kafka(),
        batch_size=settings.relay_batch_size,
        max_record_bytes=record_limit(settings.max_message_bytes),
        backoff=backoff(settings),
        observer=observer,
    )


class BackgroundPart(Protocol):
    """A part of the worker that runs beside the consumer until stopped."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Runtime:
    """What a running worker holds between start-up and shutdown."""

    consumer: CommandConsumer
    expiry: ReservationExpiry
    lot_expiry: LotExpiry | None = None
    # The outbox relay in this process, or its child process (adapters/relay_process.py).
    relay: BackgroundPart | None = None
    retention: RetentionSweeper | None = None
    pool: asyncpg.Pool | None = None
    # Refreshes the scrape-time metrics (lag, outbox) that /metrics renders.
    metrics: BackgroundPart | None = None
    scraped: tuple[Collector, ...] = ()
    # Exports the spans of traced commands (None: tracing off).
    tracing: TracerProvider | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    def start_background(self) -> None:
        """The outbox relay (here, or its child process), expiry and retention."""
        parts = (
            ("outbox-relay", self.relay),
            ("reservation-expiry", self.expiry),
            ("lot-expiry", self.lot_expiry),
            ("retention", self.retention),
            ("metrics", self.metrics),
        )
        for name, part in parts:
            if part is not None:
                self._tasks.append(asyncio.create_task(part.run(), name=name))

    async def close(self) -> None:
        """Stop expiry and the relay (it flushes what is committed); close the pool."""
        for part in (self.expiry, self.lot_expiry, self.retention, self.relay, self.metrics):
            if part is not None:
                part.stop()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await task
        exposition.uninstall(*self.scraped)
        if self.tracing is not None:
            # Exports what is still buffered; blocking (HTTP), so off the event loop.
            await asyncio.to_thread(self.tracing.shutdown)
        if self.pool is not None:
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


def build_metrics(settings: Settings, pool: asyncpg.Pool) -> tuple[MetricsRefresher, PoolCollector]:
    """The scrape-time collectors: lag and outbox are read by the refresher (a background
    part, see adapters/metrics/collectors.py), the pool's figures at the scrape."""
    lag = ConsumerLagCollector(
        settings.kafka(), settings.group_id, Topics(settings.topic_prefix).commands
    )
    outbox = OutboxCollector(pool)
    return MetricsRefresher([lag, outbox]), PoolCollector(pool)


def build_tracing(settings: Settings) -> TracerProvider | None:
    """The OpenTelemetry provider the broker's middleware and the consumer share, or None
    when no OTLP endpoint is configured."""
    return tracer_provider(
        settings.otel_exporter_otlp_endpoint, settings.otel_service_name, settings.otel_sample_ratio
    )


def build_service(settings: Settings, unit_of_work: UnitOfWorkFactory) -> CommandBatchService:
    return CommandBatchService(
        unit_of_work,
        Topics(settings.topic_prefix),
        is_transient=is_transient,
        max_message_bytes=settings.max_message_bytes,
        policy=Policy(
            over_receipt_tolerance_percent=Decimal(str(settings.over_receipt_tolerance_percent)),
            lot_expiring_days=settings.lot_expiring_days,
        ),
        describe_failure=describe_failure,
        max_locks_per_transaction=settings.max_locks_per_transaction,
        is_lock_table_full=is_lock_table_full,
    )


async def build_runtime(
    settings: Settings,
    *,
    unit_of_work: UnitOfWorkFactory | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    observer: Observer | None = None,
    tracing: TracerProvider | None = None,
) -> Runtime:
    """The worker's parts, wired from `settings`.

    Tests may substitute the unit of work (an in-memory store: no pool, relay, retention
    sweep or scrape-time metrics then), the clock expiry reads and the observer (by
    default, Prometheus instruments), as cosmicpython's bootstrap does.
    """
    exposition.check_multiprocess_mode()
    observer = observer or PrometheusObserver()
    pool = None if unit_of_work is not None else await open_database(settings)
    if unit_of_work is None:
        assert pool is not None
        unit_of_work = PostgresUnitOfWorkFactory(pool)
    service = build_service(settings, unit_of_work)
    expiry = ReservationExpiry(
        unit_of_work,
        service,
        clock=clock,
        is_transient=is_transient,
        interval_seconds=settings.expiry_interval_seconds,
        # An expiry locks a position, a reservation and (shared) its item.
        batch_size=min(500, settings.max_locks_per_transaction // 3),
        describe_failure=describe_failure,
        observer=observer,
    )
    lot_expiry = LotExpiry(
        unit_of_work,
        service,
        clock=clock,
        is_transient=is_transient,
        expiring_days=settings.lot_expiring_days,
        interval_seconds=settings.expiry_interval_seconds,
        # An expiry locks a position and (shared) its item.
        batch_size=min(500, settings.max_locks_per_transaction // 2),
        describe_failure=describe_failure,
        observer=observer,
    )
    consumer = CommandConsumer(
        service,
        is_transient=is_transient,
        backoff=backoff(settings),
        describe_failure=describe_failure,
        observer=observer,
        tracing=CommandTracing(tracing) if tracing is not None else None,
    )
    if pool is None:
        return Runtime(consumer, expiry, lot_expiry, tracing=tracing)
    retention = RetentionSweeper(
        pool,
        inbox_seconds=settings.inbox_retention_hours * 3600,
        outbox_seconds=settings.outbox_retention_hours * 3600,
        interval_seconds=settings.retention_interval_seconds,
        observer=observer,
    )
    relay: BackgroundPart | None = None
    if settings.run_relay:
        relay = (
            build_relay(settings, observer)
            if settings.relay_inline
            # Its metrics reach /metrics through the multiprocess directory.
            else RelayProcess(settings.shutdown_grace_seconds, on_child_exit=process_exited)
        )
    runtime = Runtime(consumer, expiry, lot_expiry, relay, retention, pool, tracing=tracing)
    if settings.http_port:  # /metrics is served
        refresher, pool_gauges = build_metrics(settings, pool)
        runtime.metrics = refresher
        runtime.scraped = (*refresher.collectors, pool_gauges)
        exposition.install(*runtime.scraped)
    return runtime


# Replay and rebuild (`stockworker replay`, `stockworker rebuild`) use build_service over
# a unit of work of their own, and a pool for a database other than the configured one.


async def open_database_at(settings: Settings, database_url: str) -> asyncpg.Pool:
    """A pool for `database_url`, checked as the worker checks its own (migrations, locks)."""
    return await open_database(replace(settings, database_url=database_url))
