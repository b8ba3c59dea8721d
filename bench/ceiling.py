"""What this machine can do without the worker in the way (`bench.py --ceiling`).

Measured just before the end-to-end run, on the same services:
- the database path alone: the bench's mix through the worker's own service and
  PostgreSQL unit of work, in this process, batch by batch, no Kafka. It reports the
  rate, PostgreSQL's CPU per command, and what that CPU alone would allow on all cores;
- Kafka alone: messages the size of the worker's (a command ~300 bytes, an event ~600)
  produced and read back with aiokafka (as the relay and the worker do), reporting the
  broker's CPU per message; a command moves about five messages through the broker
  (the command in, its result and events out, and both read by a consumer).
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tests.support.databases import create_database, drop_database

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.adapters.postgres.migrations import migrate
from stockworker.adapters.postgres.pool import create_pool
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.bootstrap import build_service
from stockworker.client import command_bytes, command_key
from stockworker.config import Settings
from stockworker.contract.commands import AnyCommand
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics

MESSAGES_PER_COMMAND = 5


async def database_path(
    settings: Settings,
    commands: list[AnyCommand],
    batch_size: int,
    cpu_of: Callable[[str], float],
) -> tuple[str, float]:
    """A line saying what the database path alone does, and its commands/s."""
    name = f"stockworker_ceiling_{uuid.uuid4().hex[:8]}"
    url = await create_database(settings.database_url, name)
    try:
        await migrate(url)
        pool = await create_pool(url, 2)
        service = build_service(settings, PostgresUnitOfWorkFactory(pool))
        # The records StockClient would publish for these commands.
        records = [
            InboundRecord("ceiling", i % 6, i, command_key(c), command_bytes(c), ())
            for i, c in enumerate(commands)
        ]
        batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
        await service.process(batches[0])  # warm: statements prepared, types known
        # As in the worker (entrypoints/runner.py): the bench's own heap (every command
        # it will send) out of the collector's walks.
        gc.collect()
        gc.freeze()
        database_before, own_before = cpu_of("postgres"), time.process_time()
        started = time.perf_counter()
        for batch in batches[1:]:
            await service.process(batch)
        elapsed = time.perf_counter() - started
        n = sum(len(b) for b in batches[1:])
        database = (cpu_of("postgres") - database_before) / n
        own = (time.process_time() - own_before) / n
        await pool.close()
    finally:
        await drop_database(settings.database_url, name)
    cores = os.cpu_count() or 1
    rate = n / elapsed
    return (
        f"database path alone (service + PostgreSQL, no Kafka): {rate:,.0f} commands/s; "
        f"PostgreSQL {database * 1e6:.0f} µs/command (alone it would allow "
        f"{cores / database:,.0f}/s on {cores} cores), service {own * 1e6:.0f} µs"
    ), rate


async def kafka_alone(settings: Settings, messages: int, cpu_of: Callable[[str], float]) -> str:
    topics = Topics(prefix=f"ceiling-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings.kafka_bootstrap_servers, topics, partitions=6)
    payload = b"x" * 500
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    broker_before, own_before = cpu_of("java"), time.process_time()
    started = time.perf_counter()
    try:
        for i in range(messages):
            await producer.send(topics.changed, payload, key=f"SKU-{i % 500}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topics.changed,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        max_poll_records=10_000,
    )
    await consumer.start()
    seen = 0
    try:
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - started
    broker = (cpu_of("java") - broker_before) / messages
    clients = (time.process_time() - own_before) / messages
    cores = os.cpu_count() or 1
    per_command = broker * MESSAGES_PER_COMMAND
    return (
        f"Kafka alone (produce + consume {messages:,} messages of 500 bytes): "
        f"{messages / elapsed:,.0f} messages/s; broker {broker * 1e6:.1f} µs/message, "
        f"~{per_command * 1e6:.0f} µs/command at {MESSAGES_PER_COMMAND} messages "
        f"(alone it would allow {cores / per_command:,.0f} commands/s), clients "
        f"{clients * 1e6:.1f} µs/message"
    )
