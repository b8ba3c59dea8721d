"""The one composition root: builds the worker's parts from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg

from stockworker.adapters.kafka.command_consumer import CommandConsumer
from stockworker.adapters.kafka.relay import OutboxRelay
from stockworker.adapters.postgres.errors import is_transient
from stockworker.adapters.postgres.pool import create_pool
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.config import Settings
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


def build_relay(settings: Settings) -> OutboxRelay:
    return OutboxRelay(
        settings.database_url,
        settings.kafka_bootstrap_servers,
        batch_size=settings.relay_batch_size,
        retry_max_seconds=settings.retry_max_seconds,
    )


@dataclass
class Runtime:
    """What a running worker holds between start-up and shutdown."""

    pool: asyncpg.Pool
    consumer: CommandConsumer
    relay: OutboxRelay | None
    _relay_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start_relay(self) -> None:
        if self.relay is not None:
            self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")

    async def close(self) -> None:
        """Stop the relay (it flushes what is committed) and close the pool."""
        if self.relay is not None and self._relay_task is not None:
            self.relay.stop()
            with contextlib.suppress(Exception):
                await self._relay_task
        await self.pool.close()


async def build_runtime(settings: Settings) -> Runtime:
    pool = await create_pool(
        settings.database_url,
        settings.db_pool_size,
        settings.retry_initial_seconds,
        settings.retry_max_seconds,
    )
    service = CommandBatchService(
        PostgresUnitOfWorkFactory(pool),
        Topics(settings.topic_prefix),
        is_transient=is_transient,
        max_message_bytes=settings.max_message_bytes,
    )
    consumer = CommandConsumer(
        service,
        is_transient=is_transient,
        retry_initial_seconds=settings.retry_initial_seconds,
        retry_max_seconds=settings.retry_max_seconds,
    )
    relay = build_relay(settings) if settings.run_relay else None
    return Runtime(pool=pool, consumer=consumer, relay=relay)
